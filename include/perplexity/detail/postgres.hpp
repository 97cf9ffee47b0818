// One libpq connection driven through Asio: libpq's non-blocking API does the protocol, and its socket
// is awaited with a posix::stream_descriptor, so no call here ever blocks the thread. Statements are
// sent with text parameters and read as text; the PostgresLedger above decides what to send and what a
// failure means. Nothing here retries: a connection that failed is closed, and the caller reconnects.
#pragma once

#include <perplexity/expected.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libpq-fe.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace perplexity::detail::postgres {

using Clock = std::chrono::steady_clock;

struct ResultDeleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
/// A statement's result (rows, or a command's completion).
using Result = std::unique_ptr<PGresult, ResultDeleter>;

/// Why a statement or a connection failed.
struct Failure {
    enum class Kind {
        /// The connection could not be made, or broke: the statement may or may not have run.
        connection,
        /// No answer within the time allowed; the connection was closed.
        timeout,
        /// The server refused the statement (its SQLSTATE in `sqlstate`); the connection is fine.
        statement,
    };
    Kind kind = Kind::connection;
    /// libpq's or the server's words, one line.
    std::string message{};
    std::string sqlstate{};
};

/// A statement's parameters, as text; nullopt is SQL NULL.
using Parameters = std::vector<std::optional<std::string>>;

/// libpq's messages end in a newline and may span lines; errors here are one line.
inline std::string one_line(std::string_view text) {
    std::string line(text);
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) {
        line.pop_back();
    }
    for (char& c : line) {
        if (c == '\n') {
            c = ' ';
        }
    }
    return line;
}

/// What a connection string says about where it goes, without its password: "host=H port=P dbname=D
/// user=U" (the members it sets). Empty when libpq cannot parse it.
inline std::optional<std::string> describe_target(const std::string& conninfo) {
    char* parse_error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &parse_error);
    if (parse_error != nullptr) {
        // Not echoed: it may quote a piece of the string, password included.
        PQfreemem(parse_error);
    }
    if (options == nullptr) {
        return std::nullopt;
    }
    std::string described;
    for (const char* keyword : {"host", "hostaddr", "port", "dbname", "user"}) {
        for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
            if (std::string_view(option->keyword) == keyword && option->val != nullptr && *option->val != 0) {
                described += (described.empty() ? "" : " ") + std::string(keyword) + "=" + option->val;
            }
        }
    }
    PQconninfoFree(options);
    return described.empty() ? std::string("the libpq defaults") : described;
}

class Connection {
  public:
    explicit Connection(const boost::asio::any_io_executor& executor) : socket_(executor) {}
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { close(); }

    bool connected() const noexcept {
        return connection_ != nullptr && PQstatus(connection_.get()) == CONNECTION_OK;
    }

    /// Closes the connection (a statement under way is abandoned with it).
    void close() noexcept {
        boost::system::error_code ignored;
        socket_.close(ignored);
        watched_ = -1;
        connection_.reset();
    }

    /// Connects within `timeout`.
    boost::asio::awaitable<std::optional<Failure>> connect(const std::string& conninfo,
                                                           std::chrono::milliseconds timeout) {
        close();
        connection_.reset(PQconnectStart(conninfo.c_str()));
        if (connection_ == nullptr) {
            co_return Failure{.message = "libpq could not allocate a connection"};
        }
        if (PQstatus(connection_.get()) == CONNECTION_BAD) {
            co_return fail(Failure::Kind::connection);
        }
        const Clock::time_point deadline = Clock::now() + timeout;
        PostgresPollingStatusType polled = PGRES_POLLING_WRITING;
        while (polled != PGRES_POLLING_OK) {
            if (polled == PGRES_POLLING_FAILED) {
                co_return fail(Failure::Kind::connection);
            }
            const auto waited = co_await wait(polled == PGRES_POLLING_READING, deadline);
            if (waited) {
                co_return fail(*waited, "connecting");
            }
            polled = PQconnectPoll(connection_.get());
        }
        if (PQsetnonblocking(connection_.get(), 1) != 0) {
            co_return fail(Failure::Kind::connection);
        }
        co_return std::nullopt;
    }

    /// Runs one statement (`sql` with `$1`... for `parameters`) and returns its last result, within
    /// `timeout`. `sql` may hold several statements only when there are no parameters.
    boost::asio::awaitable<expected<Result, Failure>> execute(const std::string& sql,
                                                              const Parameters& parameters,
                                                              std::chrono::milliseconds timeout) {
        if (!connected()) {
            co_return unexpected(Failure{.message = "not connected"});
        }
        const Clock::time_point deadline = Clock::now() + timeout;
        std::vector<const char*> values;
        values.reserve(parameters.size());
        for (const auto& parameter : parameters) {
            values.push_back(parameter ? parameter->c_str() : nullptr);
        }
        const int sent = parameters.empty() ? PQsendQuery(connection_.get(), sql.c_str())
                                            : PQsendQueryParams(connection_.get(), sql.c_str(),
                                                                static_cast<int>(values.size()), nullptr,
                                                                values.data(), nullptr, nullptr, 0);
        if (sent == 0) {
            co_return unexpected(fail(Failure::Kind::connection));
        }
        for (;;) {
            const int flushed = PQflush(connection_.get());
            if (flushed == 0) {
                break;
            }
            if (flushed < 0) {
                co_return unexpected(fail(Failure::Kind::connection));
            }
            if (const auto waited = co_await wait(false, deadline)) {
                co_return unexpected(fail(*waited, "sending a statement"));
            }
        }
        Result last;
        std::optional<Failure> refused;
        for (;;) {
            while (PQisBusy(connection_.get()) == 0) {
                Result result(PQgetResult(connection_.get()));
                if (result == nullptr) {
                    if (refused) {
                        co_return unexpected(std::move(*refused));
                    }
                    if (!connected()) {
                        co_return unexpected(fail(Failure::Kind::connection));
                    }
                    co_return last;
                }
                const ExecStatusType status = PQresultStatus(result.get());
                if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE ||
                    status == PGRES_NONFATAL_ERROR) {
                    if (!refused) {
                        refused = refusal(result.get());
                    }
                } else {
                    last = std::move(result);
                }
            }
            if (const auto waited = co_await wait(true, deadline)) {
                co_return unexpected(fail(*waited, "waiting for an answer"));
            }
            if (PQconsumeInput(connection_.get()) == 0) {
                co_return unexpected(fail(Failure::Kind::connection));
            }
        }
    }

  private:
    struct FinishConnection {
        void operator()(PGconn* connection) const noexcept { PQfinish(connection); }
    };

    /// The server's refusal of a statement; the codes that mean the server is going away (or the
    /// connection went) count as a lost connection, which the caller may retry.
    Failure refusal(const PGresult* result) {
        const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        Failure failure{.kind = Failure::Kind::statement,
                        .message = one_line(PQresultErrorMessage(result)),
                        .sqlstate = state != nullptr ? state : ""};
        const std::string_view code = failure.sqlstate;
        // 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown, cannot connect now.
        if (code.starts_with("08") || code == "57P01" || code == "57P02" || code == "57P03" || !connected()) {
            failure.kind = Failure::Kind::connection;
        }
        return failure;
    }

    /// Closes the connection after a failure of `kind`, in libpq's words.
    Failure fail(Failure::Kind kind) {
        Failure failure{.kind = kind,
                        .message = connection_ ? one_line(PQerrorMessage(connection_.get())) : std::string()};
        if (failure.message.empty()) {
            failure.message = "the connection was lost";
        }
        close();
        return failure;
    }

    Failure fail(Failure::Kind kind, const char* doing) {
        if (kind == Failure::Kind::timeout) {
            close();
            return Failure{.kind = kind, .message = std::string("no answer in time while ") + doing};
        }
        return fail(kind);
    }

    /// Waits until the socket can be read (or written), or the deadline. libpq may change its socket
    /// while connecting (one host after another), so the watched descriptor follows it; it is a
    /// duplicate, so that closing it never closes libpq's own.
    boost::asio::awaitable<std::optional<Failure::Kind>> wait(bool readable, Clock::time_point deadline) {
        using namespace boost::asio::experimental::awaitable_operators;
        const int socket = PQsocket(connection_.get());
        if (socket < 0) {
            co_return Failure::Kind::connection;
        }
        if (socket != watched_) {
            boost::system::error_code ignored;
            socket_.close(ignored);
            const int duplicate = ::dup(socket);
            if (duplicate < 0) {
                co_return Failure::Kind::connection;
            }
            boost::system::error_code ec;
            socket_.assign(duplicate, ec);
            if (ec) {
                ::close(duplicate);
                co_return Failure::Kind::connection;
            }
            watched_ = socket;
        }
        boost::asio::steady_timer timer(socket_.get_executor(), deadline);
        try {
            const auto which =
                co_await (socket_.async_wait(readable ? boost::asio::posix::descriptor_base::wait_read
                                                      : boost::asio::posix::descriptor_base::wait_write,
                                             boost::asio::use_awaitable) ||
                          timer.async_wait(boost::asio::use_awaitable));
            if (which.index() == 1) {
                co_return Failure::Kind::timeout;
            }
        } catch (const boost::system::system_error&) {
            co_return Failure::Kind::connection;
        }
        co_return std::nullopt;
    }

    std::unique_ptr<PGconn, FinishConnection> connection_{};
    boost::asio::posix::stream_descriptor socket_;
    /// libpq's socket that socket_ duplicates; -1 when none.
    int watched_ = -1;
};

}  // namespace perplexity::detail::postgres
