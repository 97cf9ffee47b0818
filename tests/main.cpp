// The doctest runner, in a translation unit of its own so test files rebuild without it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
