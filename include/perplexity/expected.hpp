/// @file
/// `perplexity::expected`: std::expected where the standard library has it, a conforming subset
/// otherwise.
///
/// The names are those of `<expected>`: `perplexity::expected`, `unexpected`, `unexpect`,
/// `unexpect_t` and `bad_expected_access`. Define `PERPLEXITY_USE_OWN_EXPECTED` to use the library's
/// own even where `std::expected` exists (every translation unit of a program must agree).
///
/// Note for portable code: the fallback has the monadic operations (and_then, transform, or_else,
/// transform_error), but std::expected has them only from P2505 on (__cpp_lib_expected >= 202211L, e.g.
/// GCC 13); GCC 12's C++23 std::expected lacks them.
#pragma once

#if __has_include(<version>)
#include <version>
#endif

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L && !defined(PERPLEXITY_USE_OWN_EXPECTED)
#include <expected>

namespace perplexity {
using std::bad_expected_access;
using std::expected;
using std::unexpect;
using std::unexpect_t;
using std::unexpected;
}  // namespace perplexity

/// 1 when `perplexity::expected` is `std::expected`, 0 when it is the library's own.
#define PERPLEXITY_HAS_STD_EXPECTED 1
#else
#include "detail/expected.hpp"
/// 1 when `perplexity::expected` is `std::expected`, 0 when it is the library's own.
#define PERPLEXITY_HAS_STD_EXPECTED 0
#endif
