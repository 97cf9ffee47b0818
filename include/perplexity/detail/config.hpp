/// @file
/// How the library is compiled: header-only (the default) or separately
/// (PERPLEXITY_ASYNC_SEPARATE_COMPILATION).
#pragma once

#include <perplexity/expected.hpp>

// Header-only, the definitions in detail/*.ipp are included by the public headers and are inline. With
// PERPLEXITY_ASYNC_SEPARATE_COMPILATION defined in every unit of a program, the public headers only
// declare them, and one unit of the program defines them, once, by including <perplexity/src.hpp>.
#ifdef PERPLEXITY_ASYNC_SEPARATE_COMPILATION
#define PERPLEXITY_ASYNC_DECL
#else
#define PERPLEXITY_ASYNC_DECL inline
#endif

namespace perplexity::detail {

// Which `expected` a unit sees, as a type: a parameter of this type in a function compiled by src.hpp
// puts the choice into the function's linker name.
#if PERPLEXITY_HAS_STD_EXPECTED
struct uses_std_expected {};
using ExpectedFlavour = uses_std_expected;
#else
struct uses_own_expected {};
using ExpectedFlavour = uses_own_expected;
#endif

}  // namespace perplexity::detail
