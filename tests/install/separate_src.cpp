// The unit a user adds for separate compilation: the library, compiled once for the whole program.
#include <perplexity/src.hpp>
