// What the ledger tests share: a scratch directory per test, intents and times that both ledgers hold
// exactly (the SQLite ledger keeps whole milliseconds), and the fixtures the contract tests run against.
#pragma once

#include <perplexity/ledger.hpp>
#include <perplexity/memory_ledger.hpp>
#include <perplexity/sqlite_ledger.hpp>

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace ledger_test {

namespace px = perplexity;

/// A fresh directory under the system's temporary directory, removed with everything in it.
class TempDir {
  public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "perplexity-ledger-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        // A test may have left it read-only; removal needs it writable again.
        ::chmod(path_.c_str(), 0700);
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }

    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

/// A time both ledgers keep as is: `offset_ms` after 2026-01-01.
inline std::chrono::system_clock::time_point at(std::int64_t offset_ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(1767225600000 + offset_ms));
}

inline px::LedgerIntent intent(const std::string& label, std::int64_t offset_ms,
                               px::LedgerApi api = px::LedgerApi::sonar) {
    return px::LedgerIntent{.api = api,
                            .label = label,
                            .request = R"({"model":"sonar-deep-research","label":")" + label + "\"}",
                            .idempotency_key = api == px::LedgerApi::sonar ? "key-" + label : "",
                            .at = at(offset_ms)};
}

/// A MemoryLedger, for the contract tests.
struct MemoryFixture {
    static constexpr const char* name = "MemoryLedger";
    std::shared_ptr<px::MemoryLedger> ledger = std::make_shared<px::MemoryLedger>();
};

/// A SqliteLedger in a fresh file, for the contract tests.
struct SqliteFixture {
    static constexpr const char* name = "SqliteLedger";
    TempDir directory;
    std::shared_ptr<px::SqliteLedger> ledger = open(directory.file("ledger.sqlite"));

    static std::shared_ptr<px::SqliteLedger> open(const std::string& path) {
        auto opened = px::SqliteLedger::open(path);
        if (!opened) {
            FAIL("opening " << path << ": " << opened.error());
        }
        return *opened;
    }
};

}  // namespace ledger_test
