// perplexity-async: library version.
#pragma once

#define PERPLEXITY_ASYNC_VERSION_MAJOR 0
#define PERPLEXITY_ASYNC_VERSION_MINOR 1
#define PERPLEXITY_ASYNC_VERSION_PATCH 0
#define PERPLEXITY_ASYNC_VERSION_STRING "0.1.0"

namespace perplexity {
inline constexpr const char* version_string = PERPLEXITY_ASYNC_VERSION_STRING;
}  // namespace perplexity
