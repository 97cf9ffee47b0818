// Links two units that both use the Client, the JSON functions and make_idempotency_key. Header-only, each
// unit carries its own inline copy of the library and the linker must keep one without complaint; with
// separate compilation, the library is defined once, in its own unit, and both units must find it. Each
// unit's calls must then work in one process.
#include "odr_units.hpp"

#include <iostream>
#include <string>

int main() {
    int failures = 0;
    for (const std::string& problem : {odr_unit_a(), odr_unit_b()}) {
        if (!problem.empty()) {
            std::cerr << problem << '\n';
            ++failures;
        }
    }
    if (failures == 0) {
        std::cout << "both units ran\n";
    }
    return failures == 0 ? 0 : 1;
}
