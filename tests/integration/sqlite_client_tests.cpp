// The Client with a SqliteLedger on a real file, against the simulator: what a ledger that cannot be
// written does to a run, and that a run's entry is in the file for whoever opens it next. Built into the
// ledger tests, the one program linked with SQLite; the crash tests (tests/crash_test.sh) kill a process
// doing the same.
#include "../ledger/ledger_test_support.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <perplexity/sqlite_ledger.hpp>

#include <sqlite3.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

namespace {

using namespace std::chrono_literals;

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::string file_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A second connection to the ledger's file holding its write lock, as a `sqlite3` shell in a transaction
// would.
class WriteLock {
  public:
    explicit WriteLock(const std::string& path) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db_, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;
    ~WriteLock() { release(); }

    void release() {
        if (db_ != nullptr) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            sqlite3_close(db_);
            db_ = nullptr;
        }
    }

  private:
    sqlite3* db_ = nullptr;
};

}  // namespace

TEST_CASE("Client with a SqliteLedger: a locked ledger stops the create; once free, the run is in the file") {
    ledger_test::TempDir directory;
    const std::string path = directory.file("ledger.sqlite");
    test::Harness harness;
    std::string job_id;
    {
        // Short, so the refused run does not block the test for the default five seconds.
        auto ledger = px::SqliteLedger::open(path, {.busy_timeout = 100ms});
        REQUIRE(ledger);
        px::ClientOptions options = harness.client_options();
        options.ledger = *ledger;
        px::Client client(harness.io.get_executor(), options);

        WriteLock lock(path);
        px::WaitOptions locked_out;
        locked_out.label = "locked out";
        const auto refused = harness.run(client.run(test::question("Who holds the lock?"), locked_out));
        REQUIRE_FALSE(refused);
        CHECK(refused.error().kind == px::ErrorKind::ledger);
        CHECK_MESSAGE(contains(refused.error().message, "locked"), refused.error().message);
        // An intent that was not recorded means a job nobody could find after a crash: none may be made.
        CHECK(harness.simulator.stats().creates_received == 0);
        lock.release();

        px::WaitOptions free;
        free.label = "after the lock";
        const auto job = harness.run(client.run(test::question("How far is the Moon?"), free));
        REQUIRE(job);
        job_id = job->id;
        CHECK(harness.simulator.stats().creates_received == 1);
    }

    // Reopened, as a restarted process would: the Client and its ledger are gone, and so is the file lock.
    auto reopened = px::SqliteLedger::open(path);
    REQUIRE(reopened);
    auto entries = (*reopened)->find_now({});
    REQUIRE(entries);
    // The refused run recorded nothing.
    REQUIRE(entries->size() == 1);
    const px::LedgerEntry& entry = entries->front();
    CHECK(entry.label == "after the lock");
    CHECK(entry.state == px::EntryState::completed);
    CHECK(entry.job_id == job_id);
    const auto recorded = px::parse_job(entry.result);
    REQUIRE(recorded);
    CHECK(recorded->id == job_id);
    CHECK(recorded->status == px::JobStatus::completed);
    const std::string files = file_text(path) + file_text(path + "-wal");
    CHECK_FALSE(contains(files, test::secret_key));
}
