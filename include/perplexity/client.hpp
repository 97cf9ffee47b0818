// perplexity-async: Client, the operations on async chat completion jobs.
#pragma once

#include <perplexity/detail/connection.hpp>
#include <perplexity/detail/error_body.hpp>
#include <perplexity/detail/url.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/json.hpp>
#include <perplexity/options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace perplexity {

/// A client of the async chat completions API.
///
/// Executor and threads: a Client belongs to one executor and is not thread-safe; start every operation
/// from that executor (on a multi-threaded io_context, make it a strand).
///
/// Lifetime: the Client must outlive every operation started on it.
///
/// Connections: requests reuse idle keep-alive connections. A connection the server closed while idle
/// is noticed before use and replaced; one that fails before any byte of an answer arrived is replaced
/// and the request sent once more when that is safe (a get or a list, or a create whose request provably
/// never reached the server or that carries an idempotency key).
///
/// Errors: every operation returns `expected<T, Error>` and never throws for I/O, HTTP or decoding
/// failures. Bad options (an invalid base URL, an unreadable CA file, a missing API key) are reported
/// by every operation as `ErrorKind::invalid_argument`.
///
/// Cancellation: operations support terminal per-operation cancellation (e.g. a cancellation slot bound
/// with `asio::bind_cancellation_slot`); a cancelled operation returns `ErrorKind::cancelled`, closes the
/// connection it was using, and leaves the Client usable.
class Client {
  public:
    using executor_type = boost::asio::any_io_executor;

    Client(executor_type executor, ClientOptions options)
        : executor_(std::move(executor)),
          options_(std::move(options)),
          tls_context_(boost::asio::ssl::context::tls_client) {
        configure();
    }

    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    ~Client() {
        for (auto& connection : idle_connections_) {
            connection->close();
        }
    }

    executor_type get_executor() const noexcept { return executor_; }
    const ClientOptions& options() const noexcept { return options_; }

    /// Why the options are unusable, if they are; every operation then fails with this error.
    const std::optional<Error>& configuration_error() const noexcept { return configuration_error_; }

    /// Connections kept open for reuse right now.
    std::size_t idle_connection_count() const noexcept { return idle_connections_.size(); }

    /// Submits a job. The returned Job is usually CREATED.
    ///
    /// With an `idempotency_key`, the API answers a repeated create with the job the key first created,
    /// so the request may safely be sent again after a failure: reuse the same key for every attempt of
    /// the same job. Without one, a create whose answer was lost may or may not have created a job; the
    /// Error says so.
    boost::asio::awaitable<expected<Job, Error>> create(
        ChatRequest request, std::optional<std::string> idempotency_key = std::nullopt) {
        if (auto invalid = check_chat_request(request, idempotency_key)) {
            co_return unexpected(std::move(*invalid));
        }
        std::string body = boost::json::serialize(create_request_body(request, idempotency_key));
        const bool resend_safe = idempotency_key.has_value();
        auto response = co_await shielded(send(
            make_request(boost::beast::http::verb::post, collection_target(), std::move(body)), resend_safe));
        if (!response) {
            co_return unexpected(std::move(response).error());
        }
        co_return read_response<Job>(*response, "job", std::nullopt);
    }

    /// Fetches a job by id. An unknown or expired id is `ErrorKind::http_status` with status 404.
    boost::asio::awaitable<expected<Job, Error>> get(std::string job_id) {
        if (job_id.empty()) {
            co_return unexpected(
                Error{.kind = ErrorKind::invalid_argument, .message = "the job id is empty"});
        }
        std::string target = collection_target() + "/" + detail::percent_encode(job_id);
        auto response =
            co_await shielded(send(make_request(boost::beast::http::verb::get, std::move(target)), true));
        if (!response) {
            Error error = std::move(response).error();
            error.job_id = job_id;
            co_return unexpected(std::move(error));
        }
        auto job = read_response<Job>(*response, "job", job_id);
        if (job && job->id != job_id) {
            co_return unexpected(Error{
                .kind = ErrorKind::decode,
                .message = "the API answered with job \"" + job->id + "\" when asked for \"" + job_id + "\"",
                .json_path = "$.id",
                .job_id = job_id});
        }
        co_return job;
    }

    /// Fetches one page of the job list, newest first. `limit` is the page size (the API's default when
    /// not set); `next_token` comes from the previous page.
    boost::asio::awaitable<expected<JobPage, Error>> list(
        std::optional<std::size_t> limit = std::nullopt,
        std::optional<std::string> next_token = std::nullopt) {
        if (limit && *limit == 0) {
            co_return unexpected(
                Error{.kind = ErrorKind::invalid_argument, .message = "the list limit must be at least 1"});
        }
        std::string target = collection_target();
        char separator = '?';
        if (limit) {
            target += separator + std::string("limit=") + std::to_string(*limit);
            separator = '&';
        }
        if (next_token) {
            target += separator + std::string("next_token=") + detail::percent_encode(*next_token);
        }
        auto response =
            co_await shielded(send(make_request(boost::beast::http::verb::get, std::move(target)), true));
        if (!response) {
            co_return unexpected(std::move(response).error());
        }
        co_return read_response<JobPage>(*response, "job list", std::nullopt);
    }

  private:
    void configure() {
        auto invalid = [this](std::string message) {
            configuration_error_ = Error{.kind = ErrorKind::invalid_argument, .message = std::move(message)};
        };
        auto origin = detail::parse_base_url(options_.base_url, options_.allow_insecure_http);
        if (!origin) {
            configuration_error_ = std::move(origin).error();
            return;
        }
        origin_ = std::move(*origin);
        if (options_.api_key.empty()) {
            return invalid(
                "no API key: set ClientOptions::api_key (options_from_environment reads PERPLEXITY_API_KEY)");
        }
        if (options_.api_key.find_first_of("\r\n") != std::string::npos) {
            return invalid("the API key contains a line break");
        }
        if (!options_.path_prefix.starts_with('/')) {
            return invalid(
                "ClientOptions::path_prefix must start with '/', e.g. \"/async/chat/completions\"");
        }
        if (!origin_.tls) {
            return;
        }
        boost::system::error_code ec;
        // TLS 1.2 is the floor: older versions have known weaknesses and the API does not need them.
        SSL_CTX_set_min_proto_version(tls_context_.native_handle(), TLS1_2_VERSION);
        tls_context_.set_verify_mode(boost::asio::ssl::verify_peer, ec);
        if (options_.ca_file.empty() && options_.ca_pem.empty() && options_.ca_directory.empty()) {
            tls_context_.set_default_verify_paths(ec);
            if (ec) {
                return invalid("the system's trusted certificate store could not be loaded: " + ec.message());
            }
        }
        if (!options_.ca_file.empty()) {
            tls_context_.load_verify_file(options_.ca_file, ec);
            if (ec) {
                return invalid("ClientOptions::ca_file \"" + options_.ca_file +
                               "\" could not be loaded as PEM certificates: " + ec.message());
            }
        }
        if (!options_.ca_pem.empty()) {
            tls_context_.add_certificate_authority(boost::asio::buffer(options_.ca_pem), ec);
            if (ec) {
                return invalid("ClientOptions::ca_pem could not be read as PEM certificates: " +
                               ec.message());
            }
        }
        if (!options_.ca_directory.empty()) {
            tls_context_.add_verify_path(options_.ca_directory, ec);
            if (ec) {
                return invalid("ClientOptions::ca_directory \"" + options_.ca_directory +
                               "\" could not be used: " + ec.message());
            }
        }
    }

    std::string collection_target() const { return origin_.base_path + options_.path_prefix; }

    detail::HttpRequest make_request(boost::beast::http::verb verb, std::string target,
                                     std::string body = {}) const {
        namespace http = boost::beast::http;
        detail::HttpRequest request{verb, target, 11};
        request.set(http::field::host, origin_.host_header);
        request.set(http::field::authorization, "Bearer " + options_.api_key);
        request.set(http::field::accept, "application/json");
        request.set(http::field::user_agent, options_.user_agent);
        if (verb == http::verb::post) {
            request.set(http::field::content_type, "application/json");
            request.body() = std::move(body);
        }
        request.keep_alive(true);
        request.prepare_payload();
        return request;
    }

    /// Sends one request on a pooled or new connection; see the class comment for when it is resent.
    boost::asio::awaitable<expected<detail::HttpResponse, Error>> send(detail::HttpRequest request,
                                                                       bool resend_safe) {
        if (configuration_error_) {
            co_return unexpected(*configuration_error_);
        }
        for (int attempt = 0;; ++attempt) {
            std::unique_ptr<detail::Connection> connection = take_idle_connection();
            const bool reused = connection != nullptr;
            if (!connection) {
                auto opened = co_await detail::Connection::open(
                    origin_, &tls_context_, {options_.connect_timeout, options_.tls_handshake_timeout});
                if (!opened) {
                    co_return unexpected(describe(opened.error()));
                }
                connection = std::move(*opened);
            }
            auto response = co_await connection->exchange(
                request,
                {options_.request_timeout, options_.max_response_header, options_.max_response_body});
            if (response) {
                if (response->keep_alive()) {
                    idle_connections_.push_back(std::move(connection));
                }
                co_return std::move(*response);
            }
            const detail::IoFailure& failure = response.error();
            // A write that failed delivered no complete request, so nothing can have acted on it; a
            // silent close before any answer on a reused connection is a stale connection, but only
            // a request that is safe to repeat may be assumed so.
            const bool never_processed = failure.step == detail::IoStep::write;
            const bool stale = reused && failure.nothing_received && (never_processed || resend_safe);
            if (attempt == 0 && stale && failure.ec != boost::asio::error::operation_aborted) {
                continue;
            }
            Error error = describe(failure);
            const bool request_was_sent =
                failure.step == detail::IoStep::read_header || failure.step == detail::IoStep::read_body;
            if (request_was_sent && !resend_safe) {
                error.message +=
                    "; the request was sent, so the server may have acted on it (for a create: list recent "
                    "jobs "
                    "to find out, and pass an idempotency_key so a retry cannot create a second job)";
            }
            co_return unexpected(std::move(error));
        }
    }

    std::unique_ptr<detail::Connection> take_idle_connection() {
        // Most recently used first: it is the one most likely still open.
        while (!idle_connections_.empty()) {
            std::unique_ptr<detail::Connection> connection = std::move(idle_connections_.back());
            idle_connections_.pop_back();
            if (connection->looks_reusable()) {
                return connection;
            }
            connection->close();
        }
        return nullptr;
    }

    /// Runs an operation, turning an exception from Asio (cancellation of the awaiting coroutine shows
    /// up as one) into an Error, so callers only ever see `expected`.
    template <class T>
    static boost::asio::awaitable<expected<T, Error>> shielded(
        boost::asio::awaitable<expected<T, Error>> operation) {
        try {
            co_return co_await std::move(operation);
        } catch (const boost::system::system_error& failure) {
            const bool cancelled = failure.code() == boost::asio::error::operation_aborted;
            co_return unexpected(Error{.kind = cancelled ? ErrorKind::cancelled : ErrorKind::transport,
                                       .message = cancelled ? "the operation was cancelled" : failure.what(),
                                       .cause = failure.code()});
        }
    }

    std::chrono::milliseconds timeout_for(detail::IoStep step) const {
        switch (step) {
            case detail::IoStep::resolve:
            case detail::IoStep::connect:
                return options_.connect_timeout;
            case detail::IoStep::tls_handshake:
                return options_.tls_handshake_timeout;
            default:
                return options_.request_timeout;
        }
    }

    static const char* timeout_option_for(detail::IoStep step) {
        switch (step) {
            case detail::IoStep::resolve:
            case detail::IoStep::connect:
                return "connect_timeout";
            case detail::IoStep::tls_handshake:
                return "tls_handshake_timeout";
            default:
                return "request_timeout";
        }
    }

    Error describe(const detail::IoFailure& failure) const {
        namespace http = boost::beast::http;
        const std::string step = detail::to_string(failure.step);
        const std::string peer = origin_.host_header;
        Error error{.cause = failure.ec};
        if (failure.ec == boost::asio::error::operation_aborted) {
            error.kind = ErrorKind::cancelled;
            error.message = "the operation was cancelled during " + step;
        } else if (failure.ec == boost::beast::error::timeout) {
            error.kind = ErrorKind::timeout;
            error.message = step + " with " + peer + " timed out after " +
                            std::to_string(timeout_for(failure.step).count()) +
                            " ms (ClientOptions::" + timeout_option_for(failure.step) + ")";
        } else if (failure.step == detail::IoStep::tls_handshake) {
            error.kind = ErrorKind::tls;
            error.message = "the TLS handshake with " + peer + " failed: " +
                            (failure.verification_problem.empty() ? failure.ec.message()
                                                                  : "the server's certificate was refused (" +
                                                                        failure.verification_problem + ")");
        } else if (failure.ec == http::error::body_limit) {
            error.kind = ErrorKind::protocol;
            error.message = "the response body is larger than ClientOptions::max_response_body (" +
                            std::to_string(options_.max_response_body) + " bytes); it was not read";
        } else if (failure.ec == http::error::header_limit) {
            error.kind = ErrorKind::protocol;
            error.message = "the response header is larger than ClientOptions::max_response_header (" +
                            std::to_string(options_.max_response_header) + " bytes)";
        } else if (failure.ec.category() ==
                       boost::beast::http::make_error_code(http::error::bad_version).category() &&
                   failure.ec != http::error::end_of_stream && failure.ec != http::error::partial_message) {
            error.kind = ErrorKind::protocol;
            error.message =
                "the response from " + peer + " is not valid HTTP/1.1 (" + failure.ec.message() + ")";
        } else if (failure.step == detail::IoStep::read_header && failure.nothing_received) {
            error.message = "the server " + peer + " closed the connection before answering";
        } else {
            error.message = step + " with " + peer + " failed: " + failure.ec.message();
        }
        return error;
    }

    /// Turns an HTTP response into the operation's result: a decoded body on 2xx, an Error otherwise.
    template <class T>
    expected<T, Error> read_response(detail::HttpResponse& response, std::string_view what,
                                     const std::optional<std::string>& job_id) const {
        const int status = static_cast<int>(response.result_int());
        if (status >= 200 && status < 300) {
            auto decoded = detail::parse_body<T>(response.body(), what);
            if (!decoded && job_id && !decoded.error().job_id) {
                decoded.error().job_id = job_id;
            }
            return decoded;
        }
        Error error{.kind = status == 429 ? ErrorKind::rate_limited : ErrorKind::http_status,
                    .message = describe_status(status),
                    .http_status = status,
                    .job_id = job_id};
        std::string body = std::move(response.body());
        redact_key(body);
        detail::read_error_body(body, error);
        return unexpected(std::move(error));
    }

    static std::string describe_status(int status) {
        switch (status) {
            case 400:
                return "the API rejected the request as malformed";
            case 401:
                return "the API refused the API key; check ClientOptions::api_key (PERPLEXITY_API_KEY)";
            case 403:
                return "the API key is not allowed to do this";
            case 404:
                return "not found: the job id is unknown or has expired, or the path prefix is wrong";
            case 422:
                return "the API rejected the request's parameters";
            case 429:
                return "the API's rate limit was exceeded; slow down before retrying";
            default:
                break;
        }
        if (status >= 500) {
            return "the API failed with a server error; a later retry may succeed";
        }
        return "the API answered with an unexpected HTTP status";
    }

    /// Removes the API key from server text before it can reach an Error: a misbehaving proxy or server
    /// that echoes request headers must not make the key show up in logs.
    void redact_key(std::string& text) const {
        const std::string& key = options_.api_key;
        if (key.empty()) {
            return;
        }
        for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
            text.replace(at, key.size(), "[redacted]");
        }
    }

    static std::optional<Error> check_chat_request(const ChatRequest& request,
                                                   const std::optional<std::string>& idempotency_key) {
        auto invalid = [](std::string message) {
            return Error{.kind = ErrorKind::invalid_argument, .message = std::move(message)};
        };
        if (request.model.empty()) {
            return invalid("ChatRequest::model is empty");
        }
        if (request.messages.empty()) {
            return invalid("ChatRequest::messages is empty; a job needs at least one message");
        }
        for (std::size_t i = 0; i < request.messages.size(); ++i) {
            if (request.messages[i].role.empty()) {
                return invalid("ChatRequest::messages[" + std::to_string(i) + "].role is empty");
            }
        }
        if (request.max_tokens && *request.max_tokens <= 0) {
            return invalid("ChatRequest::max_tokens must be greater than 0");
        }
        if (idempotency_key && idempotency_key->empty()) {
            return invalid("the idempotency key is empty; pass std::nullopt for none");
        }
        return std::nullopt;
    }

    executor_type executor_;
    ClientOptions options_;
    boost::asio::ssl::context tls_context_;
    detail::Origin origin_;
    std::optional<Error> configuration_error_;
    std::vector<std::unique_ptr<detail::Connection>> idle_connections_;
};

}  // namespace perplexity
