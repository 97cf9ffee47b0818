// What the PostgreSQL ledger tests share: the scratch server tests/postgres/cluster started (its
// connection strings in the environment), a clean set of tables per test, and a PostgresLedger driven
// from synchronous test code by an io_context on a thread of its own.
#pragma once

#include <perplexity/postgres_ledger.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <libpq-fe.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace postgres_test {

namespace px = perplexity;
namespace asio = boost::asio;

/// An environment variable the cluster script sets; the tests cannot run without it.
inline std::string required_environment(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == 0) {
        throw std::runtime_error(
            std::string(name) +
            " is not set: run these tests through tests/postgres/cluster run (meson test does)");
    }
    return value;
}

/// The scratch database over its Unix socket (trusted, no password).
inline std::string socket_conninfo() {
    return required_environment("PERPLEXITY_PG_SOCKET_CONNINFO");
}

/// A synchronous connection (tests only), closed when it goes.
using TestConnection = std::unique_ptr<PGconn, decltype(&PQfinish)>;

/// Connects to `conninfo`; throws when it cannot.
inline TestConnection open_connection(const std::string& conninfo = socket_conninfo()) {
    TestConnection connection(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(connection.get()) != CONNECTION_OK) {
        throw std::runtime_error(std::string("cannot connect to the test database: ") +
                                 PQerrorMessage(connection.get()));
    }
    return connection;
}

/// Runs SQL on `connection`, synchronously; throws on failure.
inline void execute_on(PGconn* connection, const std::string& sql) {
    PGresult* result = PQexec(connection, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    const std::string message = PQresultErrorMessage(result);
    PQclear(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        throw std::runtime_error("test SQL failed: " + sql + ": " + message);
    }
}

/// Runs SQL on a connection of its own, synchronously (tests only); throws on failure.
inline void execute(const std::string& sql, const std::string& conninfo = socket_conninfo()) {
    execute_on(open_connection(conninfo).get(), sql);
}

/// The first column of the first row of a query, as text (tests only).
inline std::string query_value(const std::string& sql) {
    PGconn* connection = PQconnectdb(socket_conninfo().c_str());
    PGresult* result = PQexec(connection, sql.c_str());
    std::string value = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0
                            ? std::string(PQgetvalue(result, 0, 0))
                            : std::string("<error: ") + PQresultErrorMessage(result) + ">";
    PQclear(result);
    PQfinish(connection);
    return value;
}

/// Drops the ledger's tables, so that a test starts from an empty database.
inline void drop_tables() {
    execute(
        "DROP TABLE IF EXISTS perplexity_entries, perplexity_replicas, perplexity_pace, perplexity_schema "
        "CASCADE");
}

/// Keeps a replica from renewing its lease, as a database out of its reach would: a transaction of
/// its own holds the replica's row locked, so the replica's renewals wait (and everything it sends after
/// them, on its one connection) until `release`.
class LeaseBlocker {
  public:
    explicit LeaseBlocker(std::string replica)
        : replica_(std::move(replica)), connection_(open_connection()) {
        execute_on(connection_.get(), "BEGIN");
        execute_on(connection_.get(),
                   "SELECT 1 FROM perplexity_replicas WHERE name = '" + replica_ + "' FOR UPDATE");
    }
    LeaseBlocker(const LeaseBlocker&) = delete;
    LeaseBlocker& operator=(const LeaseBlocker&) = delete;
    ~LeaseBlocker() { release(); }

    /// Waits until the replica's lease has run out (it cannot renew meanwhile), checking every 20 ms;
    /// whether it did within `limit`.
    bool wait_until_expired(std::chrono::milliseconds limit) const {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (query_value("SELECT lease_until < now() FROM perplexity_replicas WHERE name = '" + replica_ +
                           "'") != "t") {
            if (std::chrono::steady_clock::now() > until) {
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return true;
    }

    /// Lets the replica renew again.
    void release() {
        if (connection_ != nullptr) {
            PQclear(PQexec(connection_.get(), "ROLLBACK"));
            connection_.reset();
        }
    }

  private:
    std::string replica_;
    TestConnection connection_;
};

/// An io_context running on a thread of its own, for the ledger's background work.
class Runner {
  public:
    Runner() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;
    ~Runner() {
        work_.reset();
        io_.stop();
        thread_.join();
    }

    asio::io_context& io() { return io_; }

    /// Runs `operation` on the runner's thread and waits for its result.
    template <class T>
    T wait(asio::awaitable<T> operation) {
        return asio::co_spawn(io_, std::move(operation), asio::use_future).get();
    }

  private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
};

/// Opens a PostgresLedger on `runner`, or throws.
inline std::shared_ptr<px::PostgresLedger> open_ledger(Runner& runner, px::PostgresLedgerOptions options = {},
                                                       const std::string& conninfo = socket_conninfo()) {
    auto opened =
        runner.wait(px::PostgresLedger::open(runner.io().get_executor(), conninfo, std::move(options)));
    if (!opened) {
        throw std::runtime_error("cannot open the PostgreSQL ledger: " + px::to_string(opened.error()));
    }
    return *opened;
}

/// A PostgresLedger with the synchronous calls the contract tests use, over fresh tables. It is a
/// Ledger itself (forwarding to the real one), so the awaitable calls are exercised from any
/// io_context.
class SyncPostgresLedger final : public px::Ledger {
  public:
    SyncPostgresLedger() {
        drop_tables();
        ledger_ = open_ledger(runner_, {.replica = "contract"});
    }
    ~SyncPostgresLedger() override { runner_.wait(ledger_->close()); }

    asio::awaitable<px::expected<px::EntryId, px::Error>> add(px::LedgerIntent intent) override {
        return ledger_->add(std::move(intent));
    }
    asio::awaitable<std::optional<px::Error>> update(px::EntryId entry, px::LedgerUpdate update) override {
        return ledger_->update(entry, std::move(update));
    }
    asio::awaitable<px::expected<std::vector<px::LedgerEntry>, px::Error>> find(
        px::LedgerQuery query) override {
        return ledger_->find(std::move(query));
    }

    px::expected<px::EntryId, px::Error> add_now(const px::LedgerIntent& intent) {
        return runner_.wait(ledger_->add(intent));
    }
    std::optional<px::Error> update_now(px::EntryId entry, const px::LedgerUpdate& update) {
        return runner_.wait(ledger_->update(entry, update));
    }
    px::expected<std::vector<px::LedgerEntry>, px::Error> find_now(const px::LedgerQuery& query) {
        return runner_.wait(ledger_->find(query));
    }

  private:
    Runner runner_;
    std::shared_ptr<px::PostgresLedger> ledger_;
};

}  // namespace postgres_test

namespace ledger_test {

/// A PostgresLedger over fresh tables in the scratch server, for the contract tests.
struct PostgresFixture {
    static constexpr const char* name = "PostgresLedger";
    std::shared_ptr<postgres_test::SyncPostgresLedger> ledger =
        std::make_shared<postgres_test::SyncPostgresLedger>();
};

}  // namespace ledger_test
