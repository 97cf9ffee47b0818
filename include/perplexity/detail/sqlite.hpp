/// @file
/// Thin RAII owners of SQLite's handles for SqliteLedger: a connection (with its cache of prepared
/// statements), a statement, and the exclusive lock file that keeps a ledger to one owner. Internal:
/// only <perplexity/sqlite_ledger.hpp> includes it, so only programs using that header need SQLite.
#pragma once

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace perplexity::detail::sqlite {

/// What SQLite (or the system) said when a call failed: the result code and the most specific text.
struct Failure {
    int code = SQLITE_ERROR;
    std::string text{};
};

/// SQLite's name for a primary result code, e.g. "SQLITE_BUSY": the text alone ("database is locked")
/// does not tell a reader which of SQLite's documented cases it was.
inline const char* result_code_name(int code) noexcept {
    switch (code & 0xff) {
        case SQLITE_ERROR:
            return "SQLITE_ERROR";
        case SQLITE_PERM:
            return "SQLITE_PERM";
        case SQLITE_BUSY:
            return "SQLITE_BUSY";
        case SQLITE_LOCKED:
            return "SQLITE_LOCKED";
        case SQLITE_NOMEM:
            return "SQLITE_NOMEM";
        case SQLITE_READONLY:
            return "SQLITE_READONLY";
        case SQLITE_IOERR:
            return "SQLITE_IOERR";
        case SQLITE_CORRUPT:
            return "SQLITE_CORRUPT";
        case SQLITE_FULL:
            return "SQLITE_FULL";
        case SQLITE_CANTOPEN:
            return "SQLITE_CANTOPEN";
        case SQLITE_TOOBIG:
            return "SQLITE_TOOBIG";
        case SQLITE_CONSTRAINT:
            return "SQLITE_CONSTRAINT";
        case SQLITE_NOTADB:
            return "SQLITE_NOTADB";
        default:
            return "SQLITE_ERROR";
    }
}

/// "text (SQLITE_NAME)", the form every ledger Error quotes SQLite in. For an I/O error the extended
/// code is named too: it says which system call failed, where SQLite's text is only "disk I/O error".
inline std::string describe(const Failure& failure) {
    const char* io_step = nullptr;
    switch (failure.code) {
        case SQLITE_IOERR_READ:
            io_step = "_READ";
            break;
        case SQLITE_IOERR_SHORT_READ:
            io_step = "_SHORT_READ";
            break;
        case SQLITE_IOERR_WRITE:
            io_step = "_WRITE";
            break;
        case SQLITE_IOERR_FSYNC:
            io_step = "_FSYNC";
            break;
        case SQLITE_IOERR_TRUNCATE:
            io_step = "_TRUNCATE";
            break;
        default:
            break;
    }
    return failure.text + " (" + result_code_name(failure.code) + (io_step != nullptr ? io_step : "") + ")";
}

/// A prepared statement. Reset and unbound after each use (see `Use`), so bound text never outlives the
/// call that bound it and a failed step never leaves a read transaction open.
class Statement {
  public:
    Statement() = default;
    explicit Statement(sqlite3_stmt* handle) noexcept : handle_(handle) {}
    Statement(Statement&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Statement& operator=(Statement&& other) noexcept {
        if (this != &other) {
            sqlite3_finalize(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement() { sqlite3_finalize(handle_); }

    /// Binds text without copying it: it must stay alive until the statement is reset (`Use` does so).
    int bind(int index, std::string_view text) noexcept {
        // SQLite binds NULL for a null pointer, and the columns are NOT NULL: an empty string_view may
        // have one.
        const char* data = text.data() != nullptr ? text.data() : "";
        return sqlite3_bind_text64(handle_, index, data, text.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    int bind(int index, std::int64_t value) noexcept { return sqlite3_bind_int64(handle_, index, value); }
    int bind_null(int index) noexcept { return sqlite3_bind_null(handle_, index); }
    int bind(int index, const std::optional<std::string>& text) noexcept {
        return text ? bind(index, std::string_view(*text)) : bind_null(index);
    }

    int step() noexcept { return sqlite3_step(handle_); }

    int column_type(int column) const noexcept { return sqlite3_column_type(handle_, column); }
    std::int64_t column_int64(int column) const noexcept { return sqlite3_column_int64(handle_, column); }
    /// The column as text; valid until the next step or reset.
    std::string_view column_text(int column) const noexcept {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(handle_, column));
        // column_bytes after column_text: the length of the UTF-8 form, embedded NULs included.
        const int size = sqlite3_column_bytes(handle_, column);
        return text != nullptr ? std::string_view(text, static_cast<std::size_t>(size)) : std::string_view();
    }

    sqlite3_stmt* get() const noexcept { return handle_; }

    /// Resets and unbinds the statement when a use of it ends, however it ends.
    class Use {
      public:
        explicit Use(Statement& statement) noexcept : statement_(statement) {}
        Use(const Use&) = delete;
        Use& operator=(const Use&) = delete;
        ~Use() {
            sqlite3_reset(statement_.handle_);
            sqlite3_clear_bindings(statement_.handle_);
        }

      private:
        Statement& statement_;
    };

  private:
    sqlite3_stmt* handle_ = nullptr;
};

/// A connection to one database file, with the statements it prepared. Not thread-safe: its owner
/// serialises the calls (SqliteLedger holds a mutex).
class Connection {
  public:
    Connection() = default;
    Connection(Connection&& other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), statements_(std::move(other.statements_)) {}
    Connection& operator=(Connection&&) = delete;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() {
        // Every statement must be finalized before the connection closes, or sqlite3_close refuses.
        statements_.clear();
        sqlite3_close(handle_);
    }

    /// Opens `path` for reading and writing, creating it if missing.
    static std::optional<Failure> open(const std::string& path, Connection& connection,
                                       bool read_only = false) {
        sqlite3* handle = nullptr;
        // NOMUTEX: the owner serialises every call, so SQLite's own per-connection mutex is redundant.
        const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                          SQLITE_OPEN_NOMUTEX;
        const int code = sqlite3_open_v2(path.c_str(), &handle, flags, nullptr);
        connection.handle_ = handle;  // even on failure: the handle must be closed, and holds the message
        if (code != SQLITE_OK) {
            return handle != nullptr ? connection.failure(code) : Failure{code, sqlite3_errstr(code)};
        }
        sqlite3_extended_result_codes(handle, 1);
        return std::nullopt;
    }

    /// The failure the last call on this connection reported, given its result code.
    Failure failure(int code) const {
        // errmsg can lag behind for codes a statement reported before sqlite3_reset; errstr never does.
        const char* text = handle_ != nullptr ? sqlite3_errmsg(handle_) : nullptr;
        if (text == nullptr || std::strcmp(text, "not an error") == 0) {
            text = sqlite3_errstr(code);
        }
        Failure failure{code, text};
        // For a failed system call SQLite's text is generic ("disk I/O error"); errno says which case it
        // was (a size limit, a permission), and is only meaningful for these codes.
        const int primary = code & 0xff;
        const int system_error = handle_ != nullptr ? sqlite3_system_errno(handle_) : 0;
        if (system_error != 0 &&
            (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_FULL)) {
            failure.text += ": ";
            failure.text += std::strerror(system_error);
        }
        return failure;
    }

    /// Runs SQL that returns no rows.
    std::optional<Failure> execute(const char* sql) {
        const int code = sqlite3_exec(handle_, sql, nullptr, nullptr, nullptr);
        if (code != SQLITE_OK) {
            return failure(code);
        }
        return std::nullopt;
    }

    /// The statement for `sql`, prepared on first use and kept for the connection's life.
    Statement* prepared(const std::string& sql, std::optional<Failure>& failed) {
        const auto found = statements_.find(sql);
        if (found != statements_.end()) {
            return &found->second;
        }
        sqlite3_stmt* handle = nullptr;
        // PERSISTENT: the statements live as long as the connection, so SQLite may place them to suit.
        const int code = sqlite3_prepare_v3(handle_, sql.c_str(), static_cast<int>(sql.size()) + 1,
                                            SQLITE_PREPARE_PERSISTENT, &handle, nullptr);
        if (code != SQLITE_OK) {
            sqlite3_finalize(handle);
            failed = failure(code);
            return nullptr;
        }
        return &statements_.emplace(sql, Statement(handle)).first->second;
    }

    /// The value of a query that returns one integer (e.g. `PRAGMA user_version`).
    std::optional<Failure> query_int64(const std::string& sql, std::int64_t& value) {
        std::optional<Failure> failed;
        Statement* statement = prepared(sql, failed);
        if (statement == nullptr) {
            return failed;
        }
        const Statement::Use use(*statement);
        const int code = statement->step();
        if (code == SQLITE_ROW) {
            value = statement->column_int64(0);
            return std::nullopt;
        }
        if (code == SQLITE_DONE) {
            return Failure{SQLITE_ERROR, "`" + sql + "` returned no row"};
        }
        return failure(code);
    }

    bool in_transaction() const noexcept {
        return handle_ != nullptr && sqlite3_get_autocommit(handle_) == 0;
    }
    bool read_only() const noexcept { return sqlite3_db_readonly(handle_, "main") == 1; }
    std::int64_t last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(handle_); }
    int changes() const noexcept { return sqlite3_changes(handle_); }
    void busy_timeout(int milliseconds) noexcept { sqlite3_busy_timeout(handle_, milliseconds); }

  private:
    sqlite3* handle_ = nullptr;
    // std::map, not unordered: a handful of entries, and no hash of each SQL text on every call.
    std::map<std::string, Statement, std::less<>> statements_;
};

/// An exclusive flock on a lock file, held while this lives. flock locks belong to the open file
/// description, so a second open of the same file conflicts even within one process.
class ExclusiveFileLock {
  public:
    ExclusiveFileLock() = default;
    ExclusiveFileLock(ExclusiveFileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    ExclusiveFileLock& operator=(ExclusiveFileLock&&) = delete;
    ExclusiveFileLock(const ExclusiveFileLock&) = delete;
    ExclusiveFileLock& operator=(const ExclusiveFileLock&) = delete;
    ~ExclusiveFileLock() {
        if (fd_ >= 0) {
            ::close(fd_);  // releases the lock
        }
    }

    /// What went wrong taking the lock: which step, and errno.
    struct LockFailure {
        bool held_by_other = false;
        int error_number = 0;
        const char* step = "";
    };

    /// Creates `path` if missing and locks it without waiting.
    static std::optional<LockFailure> acquire(const std::string& path, ExclusiveFileLock& lock) {
        // O_CLOEXEC: a child that execs must not carry the lock away and outlive its owner with it.
        // Read-only: a lock needs no write access, so a lock file left read-only still works.
        const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            return LockFailure{.held_by_other = false, .error_number = errno, .step = "open"};
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int error_number = errno;
            ::close(fd);
            return LockFailure{
                .held_by_other = error_number == EWOULDBLOCK, .error_number = error_number, .step = "lock"};
        }
        lock.fd_ = fd;
        return std::nullopt;
    }

  private:
    int fd_ = -1;
};

}  // namespace perplexity::detail::sqlite
