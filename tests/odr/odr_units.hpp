// The two units of the one-definition test. Each returns what went wrong, or nothing.
#pragma once

#include <string>

std::string odr_unit_a();
std::string odr_unit_b();
