// One of the two units that use the same parts of the library (see odr_main.cpp and odr_units.hpp).
#include "odr_units.hpp"

#include <string>

std::string odr_unit_b() {
    return use_the_library("b");
}
