/// @file
/// PostgresLedger, the Ledger of a fleet: replicas of one service, on one or many machines, share one
/// PostgreSQL database. Each replica holds the entries it works on under a lease it renews; when a
/// replica dies, its lease runs out and `Client::resume` on the others takes its unfinished entries
/// over. `PostgresLedger::create_pace` gives the fleet one create rate (ClientOptions::
/// shared_create_pace). Programs that include this header link libpq (meson: the
/// `perplexity-async-postgres` dependency; pkg-config: `perplexity-async-postgres`; CMake:
/// `perplexity::async_postgres`); the rest of the library does not need it.
#pragma once

#include <perplexity/detail/postgres.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/idempotency.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/pacing.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace perplexity {

/// How PostgresLedger::open sets up a ledger.
struct PostgresLedgerOptions {
    /// This replica's name, unique among the live replicas of the fleet and the same across its
    /// restarts (a pod or host name), so that a restarted replica takes its own entries back at once.
    /// Empty (the default): the host name and the process id, which a restart changes (its entries are
    /// then taken over by whichever replica comes first once the old lease ran out).
    std::string replica{};
    /// How long a replica holds its entries after its last renewal. A replica renews every third of
    /// it; a dead one's entries go to the others this long after its last renewal at the latest.
    /// Shorter means a faster takeover and more renewals; longer rides out longer database outages
    /// without losing entries. Default 15 s.
    std::chrono::milliseconds lease = std::chrono::seconds(15);
    /// The name of the create pace's row (`create_pace`): one per API account, so that fleets of
    /// several accounts may share a database. Default "default".
    std::string account = "default";
    /// Connecting (or reconnecting) gives up after this long. Default 5 s.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
    /// A statement without an answer after this long counts as a lost connection. Default 10 s.
    std::chrono::milliseconds statement_timeout = std::chrono::seconds(10);
    /// A call whose connection was lost reconnects, with backoff, for up to this long before it fails
    /// with an `ErrorKind::ledger` Error (the database restarting takes a few seconds). Default 30 s.
    std::chrono::milliseconds reconnect_for = std::chrono::seconds(30);
    /// Told what goes wrong in the background (a lease that could not be renewed, entries found taken
    /// over), on the ledger's strand. Empty: nothing is told.
    std::function<void(const Error&)> on_background_error{};
};

/// A Ledger in a PostgreSQL database, shared by the replicas of a fleet (PostgreSQL 12 or newer).
///
/// Tables (created by `open` when missing, in the connection's default schema; a schema version the
/// library does not know is an Error): `perplexity_schema` (the version), `perplexity_entries` (one
/// row per entry, with the replica that holds it), `perplexity_replicas` (each replica's lease, in the
/// database's clock) and `perplexity_pace` (each account's next create slot and pause).
///
/// Ownership: `add` makes the entry this replica's; `update` changes an entry only while this replica
/// holds it, and otherwise fails with an `ErrorKind::taken_over` Error naming the holder, so that a
/// replica that lost an entry can never record an outcome for it. `claim` (what `Client::resume` calls)
/// returns the unfinished entries this replica holds and takes over those whose holder's lease expired,
/// in one statement with `FOR UPDATE SKIP LOCKED`: two replicas never get the same entry. A renewal
/// (every third of the lease) also finds the entries another replica took from this one, after which
/// `holding` says `taken` for them and a Client stops waiting on their jobs. While no renewal has come
/// back for a lease (the database is out of reach, or the process was stalled), `holding` says `unsure`
/// and a Client holds off its polls: the others may be taking the entries over, and two replicas must
/// not wait on one job for long.
///
/// Durability: each call is one transaction, committed before it returns (the server's
/// `synchronous_commit` decides what a commit survives; its default, on, survives a crash of the
/// database server). A lost connection is reconnected with backoff for up to
/// PostgresLedgerOptions::reconnect_for (after a call gave up, the following ones try once each until the
/// database answers again); every statement here may be sent again safely (`add` carries
/// a unique token, so a retried insert finds the entry the first one made).
///
/// Asynchronous: libpq's non-blocking API on the executor given to `open`, through a strand: nothing
/// blocks the thread, and one ledger may serve Clients on several threads. Calls share one connection
/// and run one at a time, in order. The lease is renewed in the background on that executor until
/// `close` (or until the last shared_ptr to the ledger goes), so an io_context running it does not run
/// out of work meanwhile. Callers' cancellation does not interrupt a call (a statement cut off halfway
/// would leave its outcome unknown); it takes effect at the caller's next await.
///
/// Errors never quote the connection string: they name the target as libpq parsed it, without the
/// password.
///
/// Lifetime: as any Asio I/O object, a PostgresLedger must be gone before the execution context of the
/// executor given to `open` is destroyed (mind the ClientOptions that hold it: declare the io_context
/// first).
class PostgresLedger final : public Ledger, public std::enable_shared_from_this<PostgresLedger> {
  public:
    /// The schema version this release writes and reads.
    static constexpr int schema_version = 1;

    /// Connects to the database `conninfo` names (a libpq connection string: `key=value` pairs or a
    /// `postgresql://` URI), creates or checks the tables, and starts this replica's lease. When the
    /// replica's name holds a live lease of another process (the previous run of a replica restarted at
    /// once), waits until that lease ends, at most PostgresLedgerOptions::lease. Errors
    /// (`ErrorKind::ledger`, naming the target without its password): a malformed connection string;
    /// the database cannot be reached or refuses the credentials (one attempt, within connect_timeout);
    /// the tables are of a newer schema version, or damaged; the replica's name stays in use.
    static boost::asio::awaitable<expected<std::shared_ptr<PostgresLedger>, Error>> open(
        boost::asio::any_io_executor executor, std::string conninfo, PostgresLedgerOptions options = {}) {
        const std::optional<std::string> target = detail::postgres::describe_target(conninfo);
        if (!target) {
            std::string unparsable =
                "the PostgreSQL connection string cannot be parsed (expected key=value pairs or a "
                "postgresql:// URI; it is not quoted here, since it may hold a password)";
            co_return unexpected(ledger_error(std::move(unparsable)));
        }
        if (options.replica.empty()) {
            options.replica = default_replica_name();
        }
        if (options.lease < std::chrono::milliseconds(300)) {
            co_return unexpected(ledger_error("PostgresLedgerOptions::lease must be at least 300 ms, not " +
                                              std::to_string(options.lease.count()) + " ms"));
        }
        std::shared_ptr<PostgresLedger> ledger(
            new PostgresLedger(std::move(executor), std::move(conninfo), *target, std::move(options)));
        auto started =
            boost::asio::co_spawn(ledger->strand_, start(ledger),
                                  boost::asio::bind_cancellation_slot(boost::asio::cancellation_slot(),
                                                                      boost::asio::use_awaitable));
        if (std::optional<Error> failed = co_await std::move(started)) {
            co_return unexpected(std::move(*failed));
        }
        boost::asio::co_spawn(ledger->strand_, keep_lease(ledger), boost::asio::detached);
        co_return ledger;
    }

    PostgresLedger(const PostgresLedger&) = delete;
    PostgresLedger& operator=(const PostgresLedger&) = delete;
    ~PostgresLedger() override = default;

    /// This replica's name.
    const std::string& replica() const noexcept { return options_.replica; }
    /// The database, as libpq parsed the connection string, without the password.
    const std::string& target() const noexcept { return target_; }

    boost::asio::awaitable<expected<EntryId, Error>> add(LedgerIntent intent) override {
        auto operation = on_strand(add_entry(shared_from_this(), std::move(intent)));
        co_return co_await std::move(operation);
    }

    boost::asio::awaitable<std::optional<Error>> update(EntryId entry, LedgerUpdate update) override {
        auto operation = on_strand(update_entry(shared_from_this(), entry, std::move(update)));
        co_return co_await std::move(operation);
    }

    boost::asio::awaitable<expected<std::vector<LedgerEntry>, Error>> find(LedgerQuery query) override {
        auto operation = on_strand(select_entries(shared_from_this(), std::move(query), false));
        co_return co_await std::move(operation);
    }

    boost::asio::awaitable<expected<std::vector<LedgerEntry>, Error>> claim(LedgerQuery query) override {
        auto operation = on_strand(select_entries(shared_from_this(), std::move(query), true));
        co_return co_await std::move(operation);
    }

    /// `taken` once a renewal found the entry taken over; `unsure` while the lease is not confirmed: no
    /// renewal (followed by the check for taken entries) came back within a lease of being sent, so the
    /// others may be taking this replica's entries, by the clock of this process (which stops, with
    /// the process, when the process is stalled).
    EntryHold holding(EntryId entry) const noexcept override {
        const std::lock_guard lock(held_mutex_);
        if (superseded_ || lost_.contains(entry)) {
            return EntryHold::taken;
        }
        return std::chrono::steady_clock::now() < lease_confirmed_until_ ? EntryHold::held
                                                                         : EntryHold::unsure;
    }

    /// The fleet's create pace at `per_minute` creates a minute (the account's tier,
    /// `create_rate_for_tier`), for ClientOptions::shared_create_pace. Every replica should pass the
    /// same rate: each slot is spaced by the rate of the replica that takes it.
    std::shared_ptr<SharedCreatePace> create_pace(unsigned per_minute) {
        return std::make_shared<Pace>(shared_from_this(), per_minute);
    }

    /// Stops renewing the lease and ends it at once, so that the other replicas may take this one's
    /// unfinished entries over without waiting (a graceful shutdown); the ledger refuses calls after.
    /// One attempt, not retried: without the database the lease simply runs out on its own.
    boost::asio::awaitable<std::optional<Error>> close() {
        auto operation = on_strand(release(shared_from_this()));
        co_return co_await std::move(operation);
    }

  private:
    using Parameters = detail::postgres::Parameters;

    /// A statement to run, with what it does for Errors ("could not ...").
    struct Statement {
        std::string what;
        std::string sql;
        Parameters parameters;
        /// Sent once, without reconnecting: a lease's end at shutdown need not wait for the database.
        bool once = false;
    };

    // Statements are made outside the coroutines' co_await expressions: GCC 12 mishandles braced lists
    // and converted string literals there.
    static Statement make_statement(std::string what, std::string sql, Parameters parameters = {}) {
        return Statement{std::move(what), std::move(sql), std::move(parameters), false};
    }
    using Result = detail::postgres::Result;
    using Clock = std::chrono::steady_clock;

    class Pace final : public SharedCreatePace {
      public:
        Pace(std::shared_ptr<PostgresLedger> ledger, unsigned per_minute)
            : ledger_(std::move(ledger)),
              interval_us_(per_minute == 0 ? 0 : 60'000'000 / static_cast<std::int64_t>(per_minute)) {}

        boost::asio::awaitable<expected<std::chrono::milliseconds, Error>> reserve() override {
            auto operation = ledger_->on_strand(reserve_slot(ledger_, interval_us_));
            co_return co_await std::move(operation);
        }

        boost::asio::awaitable<std::optional<Error>> pause(std::chrono::milliseconds pause) override {
            auto operation = ledger_->on_strand(pause_creates(ledger_, pause));
            co_return co_await std::move(operation);
        }

      private:
        std::shared_ptr<PostgresLedger> ledger_;
        std::int64_t interval_us_;
    };

    PostgresLedger(boost::asio::any_io_executor executor, std::string conninfo, std::string target,
                   PostgresLedgerOptions options)
        : strand_(boost::asio::make_strand(executor)),
          conninfo_(std::move(conninfo)),
          target_(std::move(target)),
          options_(std::move(options)),
          connection_(strand_),
          renew_timer_(strand_),
          incarnation_(make_idempotency_key()) {}

    /// Runs `operation` on the strand, out of reach of the caller's cancellation.
    template <class T>
    boost::asio::awaitable<T> on_strand(boost::asio::awaitable<T> operation) {
        return boost::asio::co_spawn(strand_, std::move(operation),
                                     boost::asio::bind_cancellation_slot(boost::asio::cancellation_slot(),
                                                                         boost::asio::use_awaitable));
    }

    static Error ledger_error(std::string message) {
        return Error{.kind = ErrorKind::ledger, .message = std::move(message)};
    }

    Error failure(std::string_view what, std::string_view why) const {
        return ledger_error("the PostgreSQL ledger (" + target_ + ") could not " + std::string(what) + ": " +
                            std::string(why));
    }

    static std::string default_replica_name() {
        char host[256] = {};
        if (::gethostname(host, sizeof host - 1) != 0) {
            host[0] = 0;
        }
        return std::string(host[0] != 0 ? host : "replica") + ":" + std::to_string(::getpid());
    }

    static std::string milliseconds_text(std::chrono::system_clock::time_point at) {
        return std::to_string(std::chrono::floor<std::chrono::milliseconds>(at.time_since_epoch()).count());
    }

    // One statement at a time on the connection: a FIFO of waiting calls, all on the strand.

    class Turn {
      public:
        explicit Turn(PostgresLedger& ledger) : ledger_(&ledger) {}
        Turn(Turn&& other) noexcept : ledger_(std::exchange(other.ledger_, nullptr)) {}
        Turn(const Turn&) = delete;
        Turn& operator=(const Turn&) = delete;
        Turn& operator=(Turn&&) = delete;
        ~Turn() {
            if (ledger_ != nullptr) {
                ledger_->pass_turn();
            }
        }

      private:
        PostgresLedger* ledger_;
    };

    boost::asio::awaitable<Turn> take_turn() {
        if (!busy_) {
            busy_ = true;
            co_return Turn(*this);
        }
        boost::asio::steady_timer waiting(strand_, boost::asio::steady_timer::time_point::max());
        waiting_.push_back(&waiting);
        // pass_turn cancels the timer: the turn is then this call's (busy_ stays set).
        co_await waiting.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        co_return Turn(*this);
    }

    void pass_turn() {
        if (waiting_.empty()) {
            busy_ = false;
            return;
        }
        boost::asio::steady_timer* next = waiting_.front();
        waiting_.pop_front();
        next->cancel();
    }

    /// Runs one statement in its turn; a lost connection is reconnected with jittered backoff for up to
    /// reconnect_for, and the statement sent again. Once a call has given up, the next ones try once
    /// each until the database answers again: calls queued behind one another must not each wait
    /// reconnect_for (a shutdown would take that long per call). `what` completes "could not ..." in
    /// Errors.
    boost::asio::awaitable<expected<Result, Error>> run(Statement statement) {
        const std::string& what = statement.what;
        Turn turn = co_await take_turn();
        if (closed_) {
            co_return unexpected(failure(what, "the ledger was closed"));
        }
        const Clock::time_point give_up = Clock::now() + options_.reconnect_for;
        std::chrono::milliseconds backoff(100);
        std::string last_failure;
        for (;;) {
            if (!connection_.connected()) {
                if (auto failed = co_await connection_.connect(conninfo_, options_.connect_timeout)) {
                    last_failure = "cannot connect: " + failed->message;
                }
            }
            if (connection_.connected()) {
                auto result = co_await connection_.execute(statement.sql, statement.parameters,
                                                           options_.statement_timeout);
                if (result) {
                    out_of_reach_ = false;
                    co_return std::move(*result);
                }
                if (result.error().kind == detail::postgres::Failure::Kind::statement) {
                    out_of_reach_ = false;
                    co_return unexpected(failure(what, "the database refused it (SQLSTATE " +
                                                           result.error().sqlstate +
                                                           "): " + result.error().message));
                }
                last_failure = result.error().kind == detail::postgres::Failure::Kind::timeout
                                   ? "the database did not answer within " +
                                         std::to_string(options_.statement_timeout.count()) +
                                         " ms (PostgresLedgerOptions::statement_timeout)"
                                   : "the connection was lost: " + result.error().message;
            }
            const auto jittered =
                std::chrono::milliseconds(backoff.count() / 2 + std::uniform_int_distribution<std::int64_t>(
                                                                    0, backoff.count() / 2)(random_));
            if (statement.once) {
                co_return unexpected(failure(what, last_failure + "; not retried"));
            }
            if (out_of_reach_) {
                co_return unexpected(
                    failure(what, last_failure +
                                      "; tried once: the database has been out of reach since an earlier "
                                      "call gave up after PostgresLedgerOptions::reconnect_for; nothing more "
                                      "was recorded"));
            }
            if (Clock::now() + jittered >= give_up) {
                out_of_reach_ = true;
                co_return unexpected(failure(
                    what, last_failure + "; gave up after retrying for " +
                              std::to_string(options_.reconnect_for.count()) +
                              " ms (PostgresLedgerOptions::reconnect_for); nothing more was recorded"));
            }
            boost::asio::steady_timer pause(strand_, jittered);
            co_await pause.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        }
    }

    // Opening.

    static boost::asio::awaitable<std::optional<Error>> start(std::shared_ptr<PostgresLedger> self) {
        co_return co_await self->start_here();
    }

    boost::asio::awaitable<std::optional<Error>> start_here() {
        if (auto failed = co_await connection_.connect(conninfo_, options_.connect_timeout)) {
            co_return failure("connect", failed->message);
        }
        if (auto failed = co_await set_up_tables()) {
            connection_.close();
            co_return failed;
        }
        co_return co_await register_replica();
    }

    /// Runs a statement of `open` (no reconnecting: a failure is the answer).
    boost::asio::awaitable<expected<Result, Error>> once(Statement statement) {
        auto result =
            co_await connection_.execute(statement.sql, statement.parameters, options_.statement_timeout);
        if (!result) {
            co_return unexpected(failure(statement.what, result.error().message));
        }
        co_return std::move(*result);
    }

    /// Creates the tables, or checks those there, under a transaction-wide advisory lock, so that
    /// replicas starting together do not race to create them.
    boost::asio::awaitable<std::optional<Error>> set_up_tables() {
        const std::string what = "set up its tables";
        Statement begin = make_statement(what, "BEGIN; SELECT pg_advisory_xact_lock(1350069351)");
        if (auto begun = co_await once(std::move(begin)); !begun) {
            co_return std::move(begun).error();
        }
        auto checked = co_await check_or_create_tables(what);
        const std::string ending = checked ? "ROLLBACK" : "COMMIT";
        Statement end_transaction = make_statement(what, ending);
        if (auto ended = co_await once(std::move(end_transaction)); !ended && !checked) {
            co_return std::move(ended).error();
        }
        co_return checked;
    }

    boost::asio::awaitable<std::optional<Error>> check_or_create_tables(const std::string& what) {
        Statement schema_exists = make_statement(what, "SELECT to_regclass('perplexity_schema') IS NOT NULL");
        auto exists = co_await once(std::move(schema_exists));
        if (!exists) {
            co_return std::move(exists).error();
        }
        if (std::string_view(PQgetvalue(exists->get(), 0, 0)) != "t") {
            Statement create_schema = make_statement(what, schema_v1());
            auto created = co_await once(std::move(create_schema));
            co_return created ? std::nullopt : std::optional<Error>(std::move(created).error());
        }
        Statement read_version = make_statement(what, "SELECT version FROM perplexity_schema");
        auto version = co_await once(std::move(read_version));
        if (!version) {
            co_return std::move(version).error();
        }
        if (PQntuples(version->get()) != 1) {
            co_return failure(what,
                              "its table perplexity_schema is damaged (it must hold one row, the schema "
                              "version, and holds " +
                                  std::to_string(PQntuples(version->get())) + ")");
        }
        const int found = std::atoi(PQgetvalue(version->get(), 0, 0));
        if (found > schema_version) {
            co_return failure(what, "its tables are of schema version " + std::to_string(found) +
                                        ", written by a newer perplexity-async; this release knows version " +
                                        std::to_string(schema_version) +
                                        " and changes nothing in them (upgrade every replica of the fleet)");
        }
        if (found != schema_version) {
            co_return failure(what, "its tables are of an unknown schema version " + std::to_string(found));
        }
        Statement tables_present = make_statement(
            what,
            "SELECT to_regclass('perplexity_entries') IS NOT NULL AND "
            "to_regclass('perplexity_replicas') IS NOT NULL AND "
            "to_regclass('perplexity_pace') IS NOT NULL AND "
            "to_regprocedure('perplexity_claim(text, text[], bigint, text, bigint, text)') IS NOT NULL");
        auto tables = co_await once(std::move(tables_present));
        if (!tables) {
            co_return std::move(tables).error();
        }
        if (std::string_view(PQgetvalue(tables->get(), 0, 0)) != "t") {
            co_return failure(
                what,
                "the schema version is known but a table is missing (perplexity_entries, "
                "perplexity_replicas or perplexity_pace, or the function perplexity_claim): the "
                "database was changed by hand");
        }
        co_return std::nullopt;
    }

    static std::string schema_v1() {
        return "CREATE TABLE perplexity_schema (version integer NOT NULL);"
               "INSERT INTO perplexity_schema VALUES (1);"
               "CREATE TABLE perplexity_entries ("
               " id bigserial PRIMARY KEY,"
               " intent text NOT NULL UNIQUE,"
               " api text NOT NULL, state text NOT NULL, label text NOT NULL, request text NOT NULL,"
               " idempotency_key text NOT NULL, job_id text NOT NULL DEFAULT '',"
               " status text NOT NULL DEFAULT '', result text NOT NULL DEFAULT '',"
               " error text NOT NULL DEFAULT '', created_at bigint NOT NULL, updated_at bigint NOT NULL,"
               " holder text NOT NULL);"
               "CREATE INDEX perplexity_entries_unfinished ON perplexity_entries (holder, id)"
               " WHERE state IN ('pending', 'running');"
               "CREATE INDEX perplexity_entries_label ON perplexity_entries (label);"
               "CREATE INDEX perplexity_entries_job ON perplexity_entries (job_id);"
               "CREATE TABLE perplexity_replicas ("
               " name text PRIMARY KEY, incarnation text NOT NULL, lease_until timestamptz NOT NULL);"
               "CREATE TABLE perplexity_pace ("
               " account text PRIMARY KEY, next_free timestamptz NOT NULL,"
               " paused_until timestamptz NOT NULL);"
               // The claim takes a fleet-wide lock first, and its UPDATE then reads a snapshot taken after
               // it: a single statement's snapshot, taken before its row locks, could predate a replica's
               // registration and see that replica's fresh claims as a dead one's.
               "CREATE FUNCTION perplexity_claim(me text, states text[], only_id bigint, only_label text,"
               " before_ms bigint, only_job text) RETURNS SETOF perplexity_entries LANGUAGE plpgsql AS "
               "$claim$ "
               "BEGIN"
               " PERFORM pg_advisory_xact_lock(1350069352);"
               " RETURN QUERY WITH claimable AS ("
               "  SELECT e.id FROM perplexity_entries e WHERE e.state = ANY(states)"
               "   AND (only_id IS NULL OR e.id = only_id) AND (only_label IS NULL OR e.label = only_label)"
               "   AND (before_ms IS NULL OR e.created_at < before_ms) AND (only_job IS NULL OR e.job_id = "
               "only_job)"
               "   AND (e.holder = me OR NOT EXISTS (SELECT 1 FROM perplexity_replicas r"
               "    WHERE r.name = e.holder AND r.lease_until > clock_timestamp()))"
               "  ORDER BY e.id FOR UPDATE OF e SKIP LOCKED),"
               " taken AS (UPDATE perplexity_entries e SET holder = me FROM claimable c WHERE e.id = c.id"
               "  RETURNING e.*)"
               " SELECT * FROM taken;"
               "END $claim$";
    }

    /// Starts this replica's lease. A name held by another live incarnation is waited for, once.
    boost::asio::awaitable<std::optional<Error>> register_replica() {
        const std::string what = "start the lease of replica \"" + options_.replica + "\"";
        for (int attempt = 0; attempt < 2; ++attempt) {
            const auto sent = std::chrono::steady_clock::now();
            Statement insert_replica =
                make_statement(what,
                               "INSERT INTO perplexity_replicas AS r (name, incarnation, lease_until) "
                               "VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond') "
                               "ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, "
                               "lease_until = excluded.lease_until WHERE r.lease_until < now() "
                               "RETURNING 1",
                               {options_.replica, incarnation_, std::to_string(options_.lease.count())});
            auto registered = co_await once(std::move(insert_replica));
            if (!registered) {
                co_return std::move(registered).error();
            }
            if (PQntuples(registered->get()) == 1) {
                confirm_lease(sent);
                co_return std::nullopt;
            }
            Statement lease_left =
                make_statement(what,
                               "SELECT ceil(extract(epoch FROM lease_until - now()) * 1000)::bigint "
                               "FROM perplexity_replicas WHERE name = $1",
                               {options_.replica});
            auto left = co_await once(std::move(lease_left));
            if (!left) {
                co_return std::move(left).error();
            }
            const std::int64_t wait_ms =
                PQntuples(left->get()) == 1 ? std::atoll(PQgetvalue(left->get(), 0, 0)) : 0;
            if (attempt == 1 || wait_ms > options_.lease.count() + 1000) {
                break;
            }
            boost::asio::steady_timer pause(
                strand_, std::chrono::milliseconds(std::max<std::int64_t>(wait_ms, 0) + 50));
            co_await pause.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        }
        co_return failure(what,
                          "another live process holds that name (its lease did not run out); give each "
                          "replica a name of its own (PostgresLedgerOptions::replica)");
    }

    // The lease.

    /// Renews the lease every third of it, until the ledger is closed or gone.
    static boost::asio::awaitable<void> keep_lease(std::weak_ptr<PostgresLedger> weak) {
        for (;;) {
            boost::asio::steady_timer* timer = nullptr;
            {
                const std::shared_ptr<PostgresLedger> self = weak.lock();
                if (!self || self->closed_) {
                    co_return;
                }
                timer = &self->renew_timer_;
                timer->expires_after(self->options_.lease / 3);
            }
            // The timer outlives this wait unless the ledger goes, which cancels it: then ec is set
            // and nothing of the ledger is touched.
            const auto [ec] = co_await timer->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            if (ec) {
                co_return;
            }
            const std::shared_ptr<PostgresLedger> self = weak.lock();
            if (!self || self->closed_) {
                co_return;
            }
            co_await self->renew();
        }
    }

    boost::asio::awaitable<void> renew() {
        // Taken before the statement is queued: the database's lease runs from a later moment.
        const auto sent = std::chrono::steady_clock::now();
        Statement renewal =
            make_statement("renew the lease of replica \"" + options_.replica + "\"",
                           "UPDATE perplexity_replicas SET lease_until = now() + $3::bigint * interval "
                           "'1 millisecond' WHERE name = $1 AND incarnation = $2 RETURNING 1",
                           {options_.replica, incarnation_, std::to_string(options_.lease.count())});
        auto renewed = co_await run(std::move(renewal));
        if (!renewed) {
            tell(renewed.error());
            co_return;
        }
        if (PQntuples(renewed->get()) == 0) {
            // Another process took this replica's name after the lease ran out: everything is its now.
            {
                const std::lock_guard lock(held_mutex_);
                superseded_ = true;
            }
            tell(Error{.kind = ErrorKind::taken_over,
                       .message = "replica \"" + options_.replica +
                                  "\" lost its lease to another process of the same name: it no longer holds "
                                  "any entry"});
            co_return;
        }
        // Confirmed only once the entries taken while the lease was out (if it was) are known: until
        // then `holding` would call them held.
        if (co_await find_lost_entries()) {
            confirm_lease(sent);
        }
    }

    /// The lease runs until at least a lease after `sent`, when the statement that set it was sent.
    void confirm_lease(std::chrono::steady_clock::time_point sent) {
        const std::lock_guard lock(held_mutex_);
        lease_confirmed_until_ = std::max(lease_confirmed_until_, sent + options_.lease);
    }

    /// Marks the entries another replica took from this one, so that `holding` says so; whether the
    /// check was made.
    boost::asio::awaitable<bool> find_lost_entries() {
        std::string ids;
        {
            const std::lock_guard lock(held_mutex_);
            for (const EntryId id : held_) {
                ids += (ids.empty() ? "{" : ",") + std::to_string(id);
            }
        }
        if (ids.empty()) {
            co_return true;
        }
        ids += "}";
        Statement lost_check =
            make_statement("check which entries replica \"" + options_.replica + "\" still holds",
                           "SELECT id, holder FROM perplexity_entries WHERE id = ANY($1::bigint[]) AND "
                           "(holder <> $2 OR state NOT IN ('pending', 'running'))",
                           {ids, options_.replica});
        auto taken = co_await run(std::move(lost_check));
        if (!taken) {
            tell(taken.error());
            co_return false;
        }
        std::string lost_now;
        {
            const std::lock_guard lock(held_mutex_);
            for (int row = 0; row < PQntuples(taken->get()); ++row) {
                const EntryId id = std::atoll(PQgetvalue(taken->get(), row, 0));
                held_.erase(id);
                if (std::string_view(PQgetvalue(taken->get(), row, 1)) != options_.replica) {
                    lost_.insert(id);
                    lost_now += (lost_now.empty() ? "" : ", ") + std::to_string(id);
                }
            }
        }
        if (!lost_now.empty()) {
            tell(Error{.kind = ErrorKind::taken_over,
                       .message = "other replicas took over entries " + lost_now + " from replica \"" +
                                  options_.replica + "\" while its lease had run out"});
        }
        co_return true;
    }

    void tell(const Error& error) const {
        if (options_.on_background_error) {
            try {
                options_.on_background_error(error);
            } catch (...) {
            }
        }
    }

    static boost::asio::awaitable<std::optional<Error>> release(std::shared_ptr<PostgresLedger> self) {
        if (self->closed_) {
            co_return std::nullopt;
        }
        Statement lease_end =
            make_statement("end the lease of replica \"" + self->options_.replica + "\"",
                           "UPDATE perplexity_replicas SET lease_until = now() WHERE name = $1 "
                           "AND incarnation = $2",
                           {self->options_.replica, self->incarnation_});
        // Without the database, the lease just runs out on its own: not worth holding a shutdown for.
        lease_end.once = true;
        auto released = co_await self->run(std::move(lease_end));
        self->closed_ = true;
        self->renew_timer_.cancel();
        self->connection_.close();
        co_return released ? std::nullopt : std::optional<Error>(std::move(released).error());
    }

    // The Ledger's calls.

    static boost::asio::awaitable<expected<EntryId, Error>> add_entry(std::shared_ptr<PostgresLedger> self,
                                                                      LedgerIntent intent) {
        // The token makes the insert safe to send again after a lost connection: a second insert of
        // the same intent finds the first one's entry.
        Statement insert = make_statement(
            "record the intent of a create",
            "INSERT INTO perplexity_entries (intent, api, state, label, request, idempotency_key, holder, "
            "created_at, updated_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $7) "
            "ON CONFLICT (intent) DO UPDATE SET intent = excluded.intent RETURNING id",
            {make_idempotency_key(), std::string(to_string(intent.api)), std::move(intent.label),
             std::move(intent.request), std::move(intent.idempotency_key), self->options_.replica,
             milliseconds_text(intent.at)});
        auto added = co_await self->run(std::move(insert));
        if (!added) {
            co_return unexpected(std::move(added).error());
        }
        const EntryId id = std::atoll(PQgetvalue(added->get(), 0, 0));
        const std::lock_guard lock(self->held_mutex_);
        self->held_.insert(id);
        co_return id;
    }

    static boost::asio::awaitable<std::optional<Error>> update_entry(std::shared_ptr<PostgresLedger> self,
                                                                     EntryId entry, LedgerUpdate update) {
        const std::string what = "record an update of entry " + std::to_string(entry);
        const bool ends = update.state && !is_unfinished(*update.state);
        Statement change = make_statement(
            what,
            "UPDATE perplexity_entries SET state = coalesce($1, state), job_id = coalesce($2, job_id), "
            "status = coalesce($3, status), result = coalesce($4, result), error = coalesce($5, error), "
            "updated_at = $6 WHERE id = $7 AND holder = $8 RETURNING 1",
            {update.state ? std::optional<std::string>(to_string(*update.state)) : std::nullopt,
             std::move(update.job_id), std::move(update.status), std::move(update.result),
             std::move(update.error), milliseconds_text(update.at), std::to_string(entry),
             self->options_.replica});
        auto updated = co_await self->run(std::move(change));
        if (!updated) {
            co_return std::move(updated).error();
        }
        if (PQntuples(updated->get()) == 1) {
            if (ends) {
                const std::lock_guard lock(self->held_mutex_);
                self->held_.erase(entry);
            }
            co_return std::nullopt;
        }
        Statement read_holder = make_statement(what, "SELECT holder FROM perplexity_entries WHERE id = $1",
                                               {std::to_string(entry)});
        auto holder = co_await self->run(std::move(read_holder));
        if (!holder) {
            co_return std::move(holder).error();
        }
        if (PQntuples(holder->get()) == 0) {
            co_return self->failure(what, "the ledger has no entry " + std::to_string(entry));
        }
        {
            const std::lock_guard lock(self->held_mutex_);
            self->held_.erase(entry);
            self->lost_.insert(entry);
        }
        co_return Error{
            .kind = ErrorKind::taken_over,
            .message = "ledger entry " + std::to_string(entry) + " is held by replica \"" +
                       std::string(PQgetvalue(holder->get(), 0, 0)) + "\", not by \"" +
                       self->options_.replica +
                       "\" (its lease on it ran out): that replica carries the job on and reports "
                       "its outcome; nothing was recorded here"};
    }

    static boost::asio::awaitable<expected<std::vector<LedgerEntry>, Error>> select_entries(
        std::shared_ptr<PostgresLedger> self, LedgerQuery query, bool claiming) {
        std::optional<Statement> selection =
            claiming ? claim_statement(query, self->options_.replica) : find_statement(query);
        if (!selection) {
            co_return std::vector<LedgerEntry>{};
        }
        auto found = co_await self->run(std::move(*selection));
        if (!found) {
            co_return unexpected(std::move(found).error());
        }
        std::vector<LedgerEntry> entries;
        entries.reserve(static_cast<std::size_t>(PQntuples(found->get())));
        for (int row = 0; row < PQntuples(found->get()); ++row) {
            auto entry = self->read_row(found->get(), row);
            if (!entry) {
                co_return unexpected(std::move(entry).error());
            }
            entries.push_back(std::move(*entry));
        }
        std::sort(entries.begin(), entries.end(),
                  [](const LedgerEntry& a, const LedgerEntry& b) { return a.id < b.id; });
        if (claiming) {
            const std::lock_guard lock(self->held_mutex_);
            for (const LedgerEntry& entry : entries) {
                self->held_.insert(entry.id);
                self->lost_.erase(entry.id);
            }
        }
        co_return entries;
    }

    static constexpr const char* entry_columns =
        "id, api, state, label, request, idempotency_key, job_id, status, result, error, created_at, "
        "updated_at";

    /// The distinct states a query asks for, in their order.
    static std::vector<EntryState> distinct_states(const std::vector<EntryState>& states) {
        std::vector<EntryState> distinct;
        for (const EntryState state : states) {
            if (std::find(distinct.begin(), distinct.end(), state) == distinct.end()) {
                distinct.push_back(state);
            }
        }
        return distinct;
    }

    /// Whole milliseconds are kept: an entry at T is before the bound B exactly when T is before B
    /// rounded up.
    static std::string milliseconds_bound(std::chrono::system_clock::time_point before) {
        return std::to_string(
            std::chrono::ceil<std::chrono::milliseconds>(before.time_since_epoch()).count());
    }

    static Statement find_statement(const LedgerQuery& query) {
        Statement statement{"read entries", {}, {}};
        std::string where = "TRUE";
        const auto parameter = [&](std::string value) {
            statement.parameters.emplace_back(std::move(value));
            return "$" + std::to_string(statement.parameters.size());
        };
        const std::vector<EntryState> states = distinct_states(query.states);
        if (!states.empty()) {
            std::string list;
            for (const EntryState state : states) {
                list += (list.empty() ? "" : ", ") + parameter(to_string(state));
            }
            where += " AND state IN (" + list + ")";
        }
        if (query.id) {
            where += " AND id = " + parameter(std::to_string(*query.id));
        }
        if (query.label) {
            where += " AND label = " + parameter(*query.label);
        }
        if (query.job_id) {
            where += " AND job_id = " + parameter(*query.job_id);
        }
        if (query.created_before) {
            where += " AND created_at < " + parameter(milliseconds_bound(*query.created_before));
        }
        statement.sql = std::string("SELECT ") + entry_columns + " FROM perplexity_entries WHERE " + where +
                        " ORDER BY id";
        return statement;
    }

    /// The claim, through the function perplexity_claim (see schema_v1); nothing when the query asks
    /// for no unfinished state.
    static std::optional<Statement> claim_statement(const LedgerQuery& query, const std::string& replica) {
        std::string states;
        for (const EntryState state : distinct_states(
                 query.states.empty() ? std::vector<EntryState>{EntryState::pending, EntryState::running}
                                      : query.states)) {
            if (is_unfinished(state)) {
                states += (states.empty() ? "{" : ",") + std::string(to_string(state));
            }
        }
        if (states.empty()) {
            return std::nullopt;
        }
        states += "}";
        return Statement{
            "claim unfinished entries",
            std::string("SELECT ") + entry_columns +
                " FROM perplexity_claim($1, $2::text[], $3::bigint, $4, $5::bigint, $6) ORDER BY id",
            {replica, states, query.id ? std::optional<std::string>(std::to_string(*query.id)) : std::nullopt,
             query.label,
             query.created_before ? std::optional<std::string>(milliseconds_bound(*query.created_before))
                                  : std::nullopt,
             query.job_id}};
    }

    expected<LedgerEntry, Error> read_row(const PGresult* rows, int row) const {
        LedgerEntry entry;
        const auto text = [&](int column) {
            return std::string(PQgetvalue(rows, row, column), PQgetlength(rows, row, column));
        };
        entry.id = std::atoll(PQgetvalue(rows, row, 0));
        const std::string api = text(1);
        const std::string state = text(2);
        const std::optional<LedgerApi> known_api = ledger_api_from_string(api);
        if (!known_api) {
            return unexpected(failure("read entry " + std::to_string(entry.id),
                                      "it has an unknown api \"" + api + "\" (column api)"));
        }
        const std::optional<EntryState> known_state = entry_state_from_string(state);
        if (!known_state) {
            return unexpected(failure("read entry " + std::to_string(entry.id),
                                      "it has an unknown state \"" + state + "\" (column state)"));
        }
        entry.api = *known_api;
        entry.state = *known_state;
        entry.label = text(3);
        entry.request = text(4);
        entry.idempotency_key = text(5);
        entry.job_id = text(6);
        entry.status = text(7);
        entry.result = text(8);
        entry.error = text(9);
        entry.created_at = std::chrono::system_clock::time_point(
            std::chrono::milliseconds(std::atoll(PQgetvalue(rows, row, 10))));
        entry.updated_at = std::chrono::system_clock::time_point(
            std::chrono::milliseconds(std::atoll(PQgetvalue(rows, row, 11))));
        return entry;
    }

    // The pace, in the database's clock, so that replicas on machines whose clocks differ agree.

    static boost::asio::awaitable<expected<std::chrono::milliseconds, Error>> reserve_slot(
        std::shared_ptr<PostgresLedger> self, std::int64_t interval_us) {
        Statement reservation = make_statement(
            "reserve a create slot of account \"" + self->options_.account + "\"",
            "INSERT INTO perplexity_pace AS p (account, next_free, paused_until) "
            "VALUES ($1, now() + $2::bigint * interval '1 microsecond', '-infinity') "
            "ON CONFLICT (account) DO UPDATE SET next_free = greatest(p.next_free, now(), p.paused_until) + "
            "$2::bigint * interval '1 microsecond' "
            "RETURNING ceil(extract(epoch FROM p.next_free - now()) * 1000000)::bigint - $2::bigint",
            {self->options_.account, std::to_string(interval_us)});
        auto reserved = co_await self->run(std::move(reservation));
        if (!reserved) {
            co_return unexpected(std::move(reserved).error());
        }
        const std::int64_t wait_us = std::atoll(PQgetvalue(reserved->get(), 0, 0));
        co_return std::chrono::ceil<std::chrono::milliseconds>(
            std::chrono::microseconds(std::max<std::int64_t>(wait_us, 0)));
    }

    static boost::asio::awaitable<std::optional<Error>> pause_creates(std::shared_ptr<PostgresLedger> self,
                                                                      std::chrono::milliseconds pause) {
        Statement pause_statement = make_statement(
            "pause the creates of account \"" + self->options_.account + "\"",
            "INSERT INTO perplexity_pace AS p (account, next_free, paused_until) "
            "VALUES ($1, now(), now() + $2::bigint * interval '1 millisecond') "
            "ON CONFLICT (account) DO UPDATE SET paused_until = greatest(p.paused_until, now() + "
            "$2::bigint * interval '1 millisecond')",
            {self->options_.account, std::to_string(pause.count())});
        auto paused = co_await self->run(std::move(pause_statement));
        co_return paused ? std::nullopt : std::optional<Error>(std::move(paused).error());
    }

    boost::asio::strand<boost::asio::any_io_executor> strand_;
    std::string conninfo_;
    std::string target_;
    PostgresLedgerOptions options_;
    detail::postgres::Connection connection_;
    boost::asio::steady_timer renew_timer_;
    /// This process's token in its replica row: another process of the same name has another.
    std::string incarnation_;
    std::mt19937_64 random_{std::random_device{}()};
    bool busy_ = false;
    bool closed_ = false;
    /// A call gave up on reconnecting, and none has reached the database since.
    bool out_of_reach_ = false;
    std::deque<boost::asio::steady_timer*> waiting_;
    /// Guards what `holding` reads from any thread.
    mutable std::mutex held_mutex_;
    std::unordered_set<EntryId> held_;
    std::unordered_set<EntryId> lost_;
    bool superseded_ = false;
    /// Until when this replica's lease surely runs (the steady clock's epoch: not confirmed).
    std::chrono::steady_clock::time_point lease_confirmed_until_{};
};

}  // namespace perplexity
