/// @file
/// SqliteLedger, a Ledger in one SQLite file: the durable record `Client::resume` carries on from
/// after a crash, a restart or a power loss. Programs that include this header link SQLite 3.20 or newer
/// (meson: the `perplexity-async-sqlite` dependency; pkg-config: `perplexity-async-sqlite`; CMake:
/// `perplexity::async_sqlite`); the rest of the library does not need it.
#pragma once

#include <perplexity/detail/sqlite.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/ledger.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace perplexity {

/// What a SqliteLedger's durable writes survive once they return.
enum class LedgerDurability {
    /// A power loss or an operating system crash: each `add` and each durable `update` fsyncs the
    /// write-ahead log before returning (SQLite's `synchronous=FULL`). A run costs about three fsyncs:
    /// its intent, its job id and its outcome; the statuses in between cost none. The default.
    power_loss,
    /// A crash of the process, not of the machine: nothing is fsynced per write (`synchronous=NORMAL`),
    /// so a power loss may take back the last writes (the file stays consistent: it returns to an
    /// earlier commit). For machines where an fsync is slow and a power loss is handled otherwise.
    process_crash,
};

/// How SqliteLedger::open sets up a ledger.
struct SqliteLedgerOptions {
    /// What durable writes survive; see LedgerDurability.
    LedgerDurability durability = LedgerDurability::power_loss;
    /// How long a write (or the open) waits for a lock another connection to the file holds (say, a
    /// `sqlite3` shell in a transaction) before failing with an `ErrorKind::ledger` Error saying the
    /// ledger is locked. The calling thread blocks meanwhile.
    std::chrono::milliseconds busy_timeout = std::chrono::seconds(5);
    /// Opens an existing ledger for `find` only, beside the process that has it open for writing (an
    /// operator's report while a service runs): takes no lock, writes nothing to the file, and refuses
    /// `add` and `update` with an `ErrorKind::ledger` Error. A missing or empty file is an Error.
    bool read_only = false;
};

/// A Ledger in a SQLite file, in WAL mode, with one table of entries. Entry ids are never reused, even
/// after the last entry is deleted by hand.
///
/// When each call returns (see also LedgerDurability):
/// - `add`, and `update` with `durable` set: the write is committed. Under `power_loss` the write-ahead
///   log has been fsynced, so it survives a power loss; under `process_crash` it survives a crash of
///   the process only.
/// - `update` without `durable` (a status seen while polling): committed without an fsync under either
///   setting, so it survives a crash of the process; a power loss may take it back until the next
///   durable write. In WAL mode an fsync of the log at a commit makes every earlier commit durable too,
///   since the log is one append-only file replayed in order, so the next durable write (or checkpoint)
///   covers it.
/// - Every failed call recorded nothing: each write is one SQLite transaction.
/// SQLite's automatic checkpoint (about every 4 MB of log) adds two fsyncs, now and then.
///
/// One process at a time: `open` takes an exclusive lock (flock) on `path + "-lock"`, created beside the
/// file and left there, for the ledger's life, and refuses a ledger that is in use, by another process or
/// by another SqliteLedger of this one. The lock keeps out other SqliteLedgers only: other programs may
/// read the file meanwhile (a SqliteLedger opened with SqliteLedgerOptions::read_only, which takes no
/// lock; the `sqlite3` shell), and one that holds a write lock makes writes here
/// wait up to SqliteLedgerOptions::busy_timeout.
/// Do not use a SqliteLedger in a child forked after it was opened (as with any SQLite connection).
///
/// Thread-safe: a mutex serialises the calls, so one SqliteLedger may serve Clients on several threads.
/// The awaitables do their work synchronously on the awaiting thread, fsync included (a few
/// milliseconds on most disks under `power_loss`), and complete before they first suspend.
///
/// Corruption: `open` checks what is cheap to check, whatever the file's size: SQLite's header (a
/// file that is not SQLite is refused, and one truncated below the size its header records is corrupt),
/// the schema version and the table. It does not read every page (`PRAGMA quick_check` costs time in
/// proportion to the file, at every start); a damaged page elsewhere is reported as an
/// `ErrorKind::ledger` Error by the call that reads it, and an unknown api or state in a row (a
/// hand-edited file) likewise names the entry and the column.
class SqliteLedger final : public Ledger {
  public:
    /// The number in the file's header (`PRAGMA application_id`) that marks a perplexity-async ledger:
    /// "PxLg" in ASCII.
    static constexpr std::int32_t application_id = 0x50784c67;
    /// The schema version this release writes and reads (`PRAGMA user_version`).
    static constexpr std::int64_t schema_version = 1;

    /// Opens (creating if missing) the ledger file at `path`. A missing or empty file becomes a new
    /// ledger; an empty file is what a crash during the very first open leaves, and SQLite itself treats
    /// it as an empty database. Errors (`ErrorKind::ledger`; the message names the file and the cause):
    /// the ledger is in use by another process (or another SqliteLedger in this one); the lock file or
    /// the ledger cannot be created or opened (e.g. a read-only directory); the file is read-only; it is
    /// not a SQLite database, or is truncated or corrupt (SQLite's own words follow); it is a SQLite
    /// database but not a perplexity-async ledger; it was written by a newer perplexity-async (a newer
    /// schema version); it is a ledger missing its table; the disk is full while creating a new ledger.
    static expected<std::shared_ptr<SqliteLedger>, Error> open(std::string path,
                                                               SqliteLedgerOptions options = {}) {
        std::shared_ptr<SqliteLedger> ledger(new SqliteLedger(std::move(path), options));
        if (std::optional<Error> failed = ledger->open_file()) {
            return unexpected(std::move(*failed));
        }
        return ledger;
    }

    /// The file, as given to `open`.
    const std::string& path() const noexcept { return path_; }

    boost::asio::awaitable<expected<EntryId, Error>> add(LedgerIntent intent) override {
        co_return add_now(std::move(intent));
    }

    boost::asio::awaitable<std::optional<Error>> update(EntryId entry, LedgerUpdate update) override {
        co_return update_now(entry, std::move(update));
    }

    boost::asio::awaitable<expected<std::vector<LedgerEntry>, Error>> find(LedgerQuery query) override {
        co_return find_now(query);
    }

    /// `add`, synchronously.
    expected<EntryId, Error> add_now(const LedgerIntent& intent) {
        const std::lock_guard lock(mutex_);
        static const std::string sql =
            "INSERT INTO entries (api, state, label, request, idempotency_key, created_at, updated_at) "
            "VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?5)";
        const char* what = "record the intent of a create";
        if (options_.read_only) {
            return unexpected(opened_for_reading(what));
        }
        if (std::optional<Error> failed = use_synchronous(true, what)) {
            return unexpected(std::move(*failed));
        }
        std::optional<detail::sqlite::Failure> failure;
        detail::sqlite::Statement* insert = connection_.prepared(sql, failure);
        if (insert == nullptr) {
            return unexpected(write_error(what, *failure));
        }
        const detail::sqlite::Statement::Use use(*insert);
        insert->bind(1, std::string_view(to_string(intent.api)));
        insert->bind(2, std::string_view(intent.label));
        insert->bind(3, std::string_view(intent.request));
        insert->bind(4, std::string_view(intent.idempotency_key));
        insert->bind(5, milliseconds_since_epoch(intent.at));
        const int code = insert->step();
        if (code != SQLITE_DONE) {
            return unexpected(write_error(what, connection_.failure(code)));
        }
        return connection_.last_insert_rowid();
    }

    /// `update`, synchronously.
    std::optional<Error> update_now(EntryId entry, const LedgerUpdate& update) {
        const std::lock_guard lock(mutex_);
        if (options_.read_only) {
            return opened_for_reading("record an update of entry " + std::to_string(entry));
        }
        // One statement for every combination: an unset member binds NULL and keeps the column.
        static const std::string sql =
            "UPDATE entries SET state = coalesce(?1, state), job_id = coalesce(?2, job_id), "
            "status = coalesce(?3, status), result = coalesce(?4, result), error = coalesce(?5, error), "
            "updated_at = ?6 WHERE id = ?7";
        const std::string what = "record an update of entry " + std::to_string(entry);
        if (std::optional<Error> failed = use_synchronous(update.durable, what)) {
            return failed;
        }
        std::optional<detail::sqlite::Failure> failure;
        detail::sqlite::Statement* statement = connection_.prepared(sql, failure);
        if (statement == nullptr) {
            return write_error(what, *failure);
        }
        const detail::sqlite::Statement::Use use(*statement);
        if (update.state) {
            statement->bind(1, std::string_view(to_string(*update.state)));
        }
        statement->bind(2, update.job_id);
        statement->bind(3, update.status);
        statement->bind(4, update.result);
        statement->bind(5, update.error);
        statement->bind(6, milliseconds_since_epoch(update.at));
        statement->bind(7, static_cast<std::int64_t>(entry));
        const int code = statement->step();
        if (code != SQLITE_DONE) {
            return write_error(what, connection_.failure(code));
        }
        if (connection_.changes() == 0) {
            return ledger_error("the ledger " + path_ + " has no entry " + std::to_string(entry));
        }
        return std::nullopt;
    }

    /// `find`, synchronously.
    expected<std::vector<LedgerEntry>, Error> find_now(const LedgerQuery& query) {
        const std::lock_guard lock(mutex_);
        // One statement per combination of filters (a few dozen at most, each prepared once), so that
        // SQLite can use the primary key for `id` and the state index for `states`.
        // The states are bound once each, so the text depends on how many distinct states there are.
        std::vector<EntryState> states;
        for (const EntryState state : query.states) {
            if (std::find(states.begin(), states.end(), state) == states.end()) {
                states.push_back(state);
            }
        }
        std::string sql =
            "SELECT id, api, state, label, request, idempotency_key, job_id, status, result, error, "
            "created_at, updated_at FROM entries WHERE 1";
        if (!states.empty()) {
            sql += " AND state IN (";
            for (std::size_t i = 0; i < states.size(); ++i) {
                sql += i == 0 ? "?" : ", ?";
            }
            sql += ")";
        }
        if (query.id) {
            sql += " AND id = ?";
        }
        if (query.label) {
            sql += " AND label = ?";
        }
        if (query.job_id) {
            sql += " AND job_id = ?";
        }
        if (query.created_before) {
            sql += " AND created_at < ?";
        }
        sql += " ORDER BY id";

        std::optional<detail::sqlite::Failure> failure;
        detail::sqlite::Statement* select = connection_.prepared(sql, failure);
        if (select == nullptr) {
            return unexpected(read_error(*failure));
        }
        const detail::sqlite::Statement::Use use(*select);
        int index = 0;
        for (const EntryState state : states) {
            select->bind(++index, std::string_view(to_string(state)));
        }
        if (query.id) {
            select->bind(++index, static_cast<std::int64_t>(*query.id));
        }
        if (query.label) {
            select->bind(++index, std::string_view(*query.label));
        }
        if (query.job_id) {
            select->bind(++index, std::string_view(*query.job_id));
        }
        if (query.created_before) {
            // The entries' times are whole milliseconds: an entry at T is before the bound B exactly
            // when T is before B rounded up.
            select->bind(++index, std::chrono::ceil<std::chrono::milliseconds>(
                                      query.created_before->time_since_epoch())
                                      .count());
        }
        std::vector<LedgerEntry> found;
        for (;;) {
            const int code = select->step();
            if (code == SQLITE_DONE) {
                return found;
            }
            if (code != SQLITE_ROW) {
                return unexpected(read_error(connection_.failure(code)));
            }
            LedgerEntry& entry = found.emplace_back();
            if (std::optional<Error> failed = read_row(*select, entry)) {
                return unexpected(std::move(*failed));
            }
        }
    }

  private:
    SqliteLedger(std::string path, SqliteLedgerOptions options) : path_(std::move(path)), options_(options) {}

    static Error ledger_error(std::string message) {
        return Error{.kind = ErrorKind::ledger, .message = std::move(message)};
    }

    static std::int64_t milliseconds_since_epoch(std::chrono::system_clock::time_point at) {
        return std::chrono::floor<std::chrono::milliseconds>(at.time_since_epoch()).count();
    }

    static std::chrono::system_clock::time_point time_point_of(std::int64_t milliseconds) {
        return std::chrono::system_clock::time_point(std::chrono::milliseconds(milliseconds));
    }

    Error write_error(const std::string& what, const detail::sqlite::Failure& failure) {
        // After a failed write the connection is back in autocommit mode (each write is one statement,
        // which SQLite rolls back); should a failure ever leave a transaction open, close it so that the
        // next call starts clean.
        if (connection_.in_transaction()) {
            connection_.execute("ROLLBACK");
        }
        if (failure.code == SQLITE_IOERR_WRITE) {
            return ledger_error(
                "the ledger " + path_ + " could not " + what +
                ": writing the file failed (is the disk full, or the file at its size limit?); "
                "nothing was recorded (" +
                describe(failure) + ")");
        }
        switch (failure.code & 0xff) {
            case SQLITE_BUSY:
            case SQLITE_LOCKED:
                return ledger_error("the ledger " + path_ + " is locked by another connection: could not " +
                                    what + " after waiting " + std::to_string(options_.busy_timeout.count()) +
                                    " ms for the lock; nothing was recorded (" + describe(failure) + ")");
            case SQLITE_FULL:
                return ledger_error("the ledger " + path_ + " could not " + what +
                                    ": the disk is full or the file reached its size limit; nothing was "
                                    "recorded (" +
                                    describe(failure) + ")");
            case SQLITE_READONLY:
                return ledger_error("the ledger " + path_ + " could not " + what +
                                    ": it is read-only; nothing was recorded (" + describe(failure) + ")");
            default:
                return ledger_error("the ledger " + path_ + " could not " + what +
                                    "; nothing was recorded (" + describe(failure) + ")");
        }
    }

    Error read_error(const detail::sqlite::Failure& failure) const {
        if ((failure.code & 0xff) == SQLITE_BUSY) {
            return ledger_error(
                "the ledger " + path_ + " is locked by another connection: could not read it after " +
                std::to_string(options_.busy_timeout.count()) + " ms (" + describe(failure) + ")");
        }
        return ledger_error("the ledger " + path_ + " could not be read (" + describe(failure) + ")");
    }

    static std::string describe(const detail::sqlite::Failure& failure) {
        return detail::sqlite::describe(failure);
    }

    /// Sets SQLite's `synchronous` for the next write; it cannot change within a transaction, and need
    /// not: every write here is a transaction of its own.
    std::optional<Error> use_synchronous(bool durable, const std::string& what) {
        const bool full = durable && options_.durability == LedgerDurability::power_loss;
        if (synchronous_full_ == full) {
            return std::nullopt;
        }
        if (std::optional<detail::sqlite::Failure> failed =
                connection_.execute(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")) {
            return write_error(what, *failed);
        }
        synchronous_full_ = full;
        return std::nullopt;
    }

    std::optional<Error> open_failure(const std::string& cause) const {
        return ledger_error("the ledger " + path_ + " " + cause);
    }

    /// Why the file could not be read on opening, in terms of what to do about it.
    std::optional<Error> unreadable_failure(const detail::sqlite::Failure& failure) const {
        switch (failure.code & 0xff) {
            case SQLITE_NOTADB:
            case SQLITE_CORRUPT:
                return open_failure("cannot be read: it is damaged or not a SQLite database (" +
                                    describe(failure) + ")");
            case SQLITE_READONLY:
            case SQLITE_CANTOPEN:
            case SQLITE_PERM:
                // Reading in WAL mode creates the -wal and -shm files beside the ledger.
                return open_failure(
                    "cannot be read: SQLite cannot write beside it (is its directory read-only?) (" +
                    describe(failure) + ")");
            case SQLITE_BUSY:
                return open_failure("is locked by another connection: could not read it after waiting " +
                                    std::to_string(options_.busy_timeout.count()) + " ms (" +
                                    describe(failure) + ")");
            default:
                return open_failure("cannot be read (" + describe(failure) + ")");
        }
    }

    std::optional<Error> open_file() {
        if (path_.empty() || path_ == ":memory:") {
            // SQLite would open a temporary or in-memory database, which is no ledger at all.
            return ledger_error("a SqliteLedger needs a file path, not \"" + path_ +
                                "\" (use MemoryLedger for a ledger in memory)");
        }
        // The lock is on a file of its own rather than on the ledger. SQLite holds POSIX (fcntl) locks on
        // the ledger, and closing any descriptor of a file drops all of the process's POSIX locks on it:
        // a descriptor of ours on the ledger, closed when a second open is refused, would silently take
        // the first SqliteLedger's SQLite locks away. And on NFS, Linux emulates flock with POSIX locks,
        // which would then collide with SQLite's own on the same file.
        // A reader (SqliteLedgerOptions::read_only) takes no lock: it writes nothing, and WAL lets it read
        // beside the writer.
        const std::string lock_path = path_ + "-lock";
        if (!options_.read_only) {
            if (const auto failed = detail::sqlite::ExclusiveFileLock::acquire(lock_path, lock_)) {
                if (failed->held_by_other) {
                    return open_failure(
                        "is in use by another process (or by another SqliteLedger in "
                        "this one): " +
                        lock_path + " is locked");
                }
                return open_failure("cannot be locked: " + std::string(failed->step) + " " + lock_path +
                                    " failed: " + std::strerror(failed->error_number));
            }
        }
        if (const auto failed = detail::sqlite::Connection::open(path_, connection_, options_.read_only)) {
            return open_failure(
                std::string(options_.read_only ? "cannot be opened for reading (" : "cannot be opened (") +
                describe(*failed) + ")");
        }
        connection_.busy_timeout(static_cast<int>(options_.busy_timeout.count()));
        if (!options_.read_only && connection_.read_only()) {
            return open_failure("is read-only: a ledger must be writable");
        }

        // The header first: reading it is what tells a database from anything else, and nothing may be
        // written to a file before it is known to be ours (not even the switch to WAL).
        std::int64_t application = 0;
        std::int64_t version = 0;
        std::int64_t objects = 0;
        std::optional<detail::sqlite::Failure> unreadable =
            connection_.query_int64("PRAGMA application_id", application);
        if (!unreadable) {
            unreadable = connection_.query_int64("PRAGMA user_version", version);
        }
        if (!unreadable) {
            unreadable = connection_.query_int64("SELECT count(*) FROM sqlite_master", objects);
        }
        if (unreadable) {
            return unreadable_failure(*unreadable);
        }
        const bool fresh = application == 0 && version == 0 && objects == 0;
        if (fresh && options_.read_only) {
            return open_failure("is not a perplexity-async ledger (yet): it is empty");
        }
        if (!fresh && application != application_id) {
            return open_failure(application == 0
                                    ? "is not a perplexity-async ledger: it is a SQLite database with "
                                      "other tables"
                                    : "is not a perplexity-async ledger: it is a SQLite database of "
                                      "another application (application_id " +
                                          std::to_string(application) + ")");
        }
        if (!fresh && version > schema_version) {
            return open_failure("was written by a newer perplexity-async (ledger schema " +
                                std::to_string(version) + "; this release reads " +
                                std::to_string(schema_version) + ")");
        }
        if (!fresh && version < schema_version) {
            return open_failure(
                "is damaged: it is marked as a perplexity-async ledger but has no schema version");
        }
        if (options_.read_only) {
            return check_entries_table();
        }

        // WAL: a commit appends to one log instead of rewriting pages in place, so a commit costs one
        // fsync, readers (a shell, a report) never block a write, and a crash mid-write cannot tear pages.
        {
            std::optional<detail::sqlite::Failure> failed;
            detail::sqlite::Statement* journal = connection_.prepared("PRAGMA journal_mode = WAL", failed);
            if (journal == nullptr) {
                return open_failure("cannot switch to WAL mode (" + describe(*failed) + ")");
            }
            const detail::sqlite::Statement::Use use(*journal);
            const int code = journal->step();
            if (code != SQLITE_ROW) {
                return open_failure("cannot switch to WAL mode (" + describe(connection_.failure(code)) +
                                    ")");
            }
            if (journal->column_text(0) != "wal") {
                return open_failure("cannot switch to WAL mode: it stays in " +
                                    std::string(journal->column_text(0)) + " mode");
            }
        }
        if (std::optional<Error> failed = use_synchronous(true, "create its schema")) {
            return failed;
        }

        return fresh ? create_schema() : check_entries_table();
    }

    /// A file marked as a ledger must have the table of entries.
    std::optional<Error> check_entries_table() {
        std::int64_t tables = 0;
        if (const auto failed = connection_.query_int64(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'entries'", tables)) {
            return open_failure("cannot be read (" + describe(*failed) + ")");
        }
        if (tables != 1) {
            return open_failure(
                "is damaged: it is marked as a perplexity-async ledger but has no entries table");
        }
        return std::nullopt;
    }

    Error opened_for_reading(const std::string& what) const {
        return ledger_error("cannot " + what + ": the ledger " + path_ +
                            " was opened for reading only (SqliteLedgerOptions::read_only)");
    }

    std::optional<Error> create_schema() {
        // One transaction: a crash or a full disk leaves either an empty file (a new ledger again at the
        // next open) or the whole schema, never a file marked as ours without its table.
        // AUTOINCREMENT: ids are never reused, even those of entries deleted by hand, so an id in a log
        // always means one entry.
        static const char* const schema =
            "BEGIN IMMEDIATE;"
            "CREATE TABLE entries ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " api TEXT NOT NULL,"
            " state TEXT NOT NULL,"
            " label TEXT NOT NULL DEFAULT '',"
            " request TEXT NOT NULL DEFAULT '',"
            " idempotency_key TEXT NOT NULL DEFAULT '',"
            " job_id TEXT NOT NULL DEFAULT '',"
            " status TEXT NOT NULL DEFAULT '',"
            " result TEXT NOT NULL DEFAULT '',"
            " error TEXT NOT NULL DEFAULT '',"
            " created_at INTEGER NOT NULL,"
            " updated_at INTEGER NOT NULL);"
            "CREATE INDEX entries_by_state ON entries (state);"
            "PRAGMA application_id = 1350061159;"
            "PRAGMA user_version = 1;"
            "COMMIT;";
        static_assert(application_id == 1350061159 && schema_version == 1, "the schema's pragmas");
        if (const auto failed = connection_.execute(schema)) {
            if (connection_.in_transaction()) {
                connection_.execute("ROLLBACK");
            }
            return open_failure("could not be created (" + describe(*failed) + ")");
        }
        return std::nullopt;
    }

    /// Fills `entry` from the row `select` is on, refusing what this release did not write.
    std::optional<Error> read_row(const detail::sqlite::Statement& select, LedgerEntry& entry) const {
        static constexpr const char* columns[] = {
            "id",     "api",    "state",  "label", "request",    "idempotency_key",
            "job_id", "status", "result", "error", "created_at", "updated_at"};
        if (select.column_type(0) != SQLITE_INTEGER) {
            return ledger_error("the ledger " + path_ + " has an entry whose id is not an integer");
        }
        entry.id = select.column_int64(0);
        const auto bad = [&](int column, const std::string& why) {
            return ledger_error("the ledger " + path_ + " has " + why + " in entry " +
                                std::to_string(entry.id) + " (column " + columns[column] + ")");
        };
        for (int column = 1; column <= 9; ++column) {
            if (select.column_type(column) != SQLITE_TEXT) {
                return bad(column, "a value that is not text");
            }
        }
        for (int column = 10; column <= 11; ++column) {
            if (select.column_type(column) != SQLITE_INTEGER) {
                return bad(column, "a time that is not an integer");
            }
        }
        const std::string_view api = select.column_text(1);
        const std::optional<LedgerApi> known_api = ledger_api_from_string(api);
        if (!known_api) {
            return bad(1, "an unknown api \"" + std::string(api) + "\"");
        }
        const std::string_view state = select.column_text(2);
        const std::optional<EntryState> known_state = entry_state_from_string(state);
        if (!known_state) {
            return bad(2, "an unknown state \"" + std::string(state) + "\"");
        }
        entry.api = *known_api;
        entry.state = *known_state;
        entry.label = select.column_text(3);
        entry.request = select.column_text(4);
        entry.idempotency_key = select.column_text(5);
        entry.job_id = select.column_text(6);
        entry.status = select.column_text(7);
        entry.result = select.column_text(8);
        entry.error = select.column_text(9);
        entry.created_at = time_point_of(select.column_int64(10));
        entry.updated_at = time_point_of(select.column_int64(11));
        return std::nullopt;
    }

    std::string path_;
    SqliteLedgerOptions options_;
    std::mutex mutex_;
    // Declared before the connection, so the connection closes (checkpointing the log) before the lock
    // is released.
    detail::sqlite::ExclusiveFileLock lock_;
    detail::sqlite::Connection connection_;
    // Whether `synchronous` is FULL now; unknown until the open sets it (SQLite's default is a build option).
    std::optional<bool> synchronous_full_;
};

/// Opens the SqliteLedger at `path` as a Ledger, for ClientOptions::ledger; see SqliteLedger::open.
inline expected<std::shared_ptr<Ledger>, Error> open_sqlite_ledger(std::string path,
                                                                   SqliteLedgerOptions options = {}) {
    expected<std::shared_ptr<SqliteLedger>, Error> opened = SqliteLedger::open(std::move(path), options);
    if (!opened) {
        return unexpected(std::move(opened.error()));
    }
    return std::shared_ptr<Ledger>(std::move(*opened));
}

}  // namespace perplexity
