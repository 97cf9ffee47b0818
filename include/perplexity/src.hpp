/// @file
/// The library's compiled part, for separate compilation: include this file in exactly one translation
/// unit of a program whose units are all compiled with `PERPLEXITY_ASYNC_SEPARATE_COMPILATION` defined.
///
/// Header-only (the default), every unit that uses the Client compiles the whole implementation again:
/// Beast's HTTP, OpenSSL and Asio's SSL streams, the connection pool, the JSON mapping and every
/// coroutine of the engine. With the macro defined, the public headers declare the Client's operations
/// and make_idempotency_key without defining them, and include none of Beast, OpenSSL or `asio/ssl`;
/// this file defines them, once. The public API is the same in both modes.
///
/// The unit including this file is compiled with the same flags as the others (the same C++ standard
/// above all: a unit that sees C++23's std::expected and a library compiled without it do not link,
/// and the linker names the mismatch). The meson dependency `perplexity-async-separate` builds such a
/// unit for you; with pkg-config (`perplexity-async-separate`) or CMake (`perplexity::async_separate`)
/// add one of your own:
///
///     // perplexity_async.cpp
///     #include <perplexity/src.hpp>
#pragma once

#ifndef PERPLEXITY_ASYNC_SEPARATE_COMPILATION
#error \
    "<perplexity/src.hpp> is for separate compilation: define PERPLEXITY_ASYNC_SEPARATE_COMPILATION in every unit of the program, or include the other headers alone to use the library header-only"
#endif

#include <perplexity/detail/client.ipp>
#include <perplexity/detail/idempotency.ipp>
#include <perplexity/detail/json.ipp>
