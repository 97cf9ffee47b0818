// The one translation unit of the meson dependency `perplexity-async-separate`: the library compiled
// once, for programs whose units include its headers with PERPLEXITY_ASYNC_SEPARATE_COMPILATION defined
// (see <perplexity/src.hpp>).
#include <perplexity/src.hpp>
