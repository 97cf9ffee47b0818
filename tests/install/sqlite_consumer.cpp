// A program using the SQLite ledger, built against an installed (or subproject) perplexity-async through
// its SQLite module (pkg-config perplexity-async-sqlite, CMake perplexity::async_sqlite, meson
// perplexity-async-sqlite): it links only if the package brings SQLite along. It opens a ledger in a
// scratch directory, records an entry and reads it back, and exits 0 only if each step worked.
#include <perplexity/sqlite_ledger.hpp>
#include <perplexity/version.hpp>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>

namespace px = perplexity;

int main() {
    std::cout << "perplexity-async " << px::version_string << '\n';
    std::string directory = (std::filesystem::temp_directory_path() / "perplexity-consumer-XXXXXX").string();
    if (mkdtemp(directory.data()) == nullptr) {
        std::cerr << "FAILED: no scratch directory\n";
        return 1;
    }
    int status = 1;
    {
        auto ledger = px::open_sqlite_ledger(directory + "/ledger.sqlite");
        if (!ledger) {
            std::cerr << "FAILED: " << ledger.error() << '\n';
        } else {
            auto& sqlite = static_cast<px::SqliteLedger&>(**ledger);
            const auto id = sqlite.add_now(px::LedgerIntent{.label = "consumer",
                                                            .request = R"({"model":"sonar"})",
                                                            .idempotency_key = "key",
                                                            .at = std::chrono::system_clock::now()});
            const auto found = sqlite.find_now({.label = "consumer"});
            if (id && found && found->size() == 1 && found->front().id == *id) {
                std::cout << "ledger entry " << *id << ' ' << px::to_string(found->front().state) << '\n';
                status = 0;
            } else {
                std::cerr << "FAILED: the entry did not read back\n";
            }
        }
    }
    std::filesystem::remove_all(directory);
    std::cout << (status == 0 ? "ok" : "FAILED") << '\n';
    return status;
}
