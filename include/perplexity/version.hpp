/// @file
/// The library's version, for the preprocessor and at run time.
#pragma once

/// The major version: changes that break the API.
#define PERPLEXITY_ASYNC_VERSION_MAJOR 0
/// The minor version.
#define PERPLEXITY_ASYNC_VERSION_MINOR 1
/// The patch version.
#define PERPLEXITY_ASYNC_VERSION_PATCH 0
/// The whole version as text, e.g. "0.1.0"; also the default User-Agent's version.
#define PERPLEXITY_ASYNC_VERSION_STRING "0.1.0"

namespace perplexity {
/// PERPLEXITY_ASYNC_VERSION_STRING as a constant.
inline constexpr const char* version_string = PERPLEXITY_ASYNC_VERSION_STRING;
}  // namespace perplexity
