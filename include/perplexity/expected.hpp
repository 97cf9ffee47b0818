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
///
/// Why the library carries its own (about 330 lines, compiled only where `<expected>` is missing): it
/// targets C++20, which has no std::expected, and libstdc++ 12 hides it even in C++23 from compilers
/// such as clang 16. The one alternative already at hand, `boost::system::result` in the Boost 1.81 the
/// library requires, would be a different API rather than a stand-in: no `unexpected` or `unexpect`,
/// `value()` throwing through `throw_exception_from_error` (which has no overload for an `Error`, so
/// `result<Job, Error>::value()` would not even compile without one), and no monadic operations.
/// Code written against it would also stay that way in C++23, where callers expect std::expected.
/// The fallback implements only what std::expected has, with the same names and semantics, so that a
/// program moving to C++23 gets std::expected by this alias with no change to its source.
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
