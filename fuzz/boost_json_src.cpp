// Boost.JSON compiled into the fuzz targets rather than linked from the system library, so that its
// parser is instrumented too: the coverage of its branches is what guides the fuzzer through JSON.
#include <boost/json/src.hpp>
