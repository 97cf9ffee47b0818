/// @file
/// Error, the one failure type every operation returns.
///
/// An Error says what happened in our words (`message`) and keeps what the server said apart
/// (`api_type`, `api_message`, `body_excerpt`), so a log line never confuses the two. Whenever a job
/// exists, `job_id` carries its id: a paid job is never lost to an error. No Error ever contains the API
/// key: the client removes it from any server text before it lands here.
///
/// Every error code here is a `boost::system::error_code`: `Error::cause` and `Error::code()` alike.
/// The causes come from Asio, Beast, OpenSSL and Boost.JSON, which report Boost codes; kept as such
/// they keep their category and source location exactly, and compare directly with those libraries'
/// enums (`error.cause == boost::asio::error::connection_refused`). `code()` is the same type, so one
/// vocabulary covers both, and either can go wherever an Asio handler's error goes. A
/// `boost::system::error_code` converts implicitly to `std::error_code` for code that wants the standard
/// type, and an `ErrorKind` converts to either: `std::error_code ec = error.code();` then still compares
/// equal to `ErrorKind` values.
#pragma once

#include <perplexity/job.hpp>
#include <perplexity/response.hpp>

#include <boost/system/error_code.hpp>

#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <type_traits>

namespace perplexity {

/// What kind of failure an Error is. Each kind is also an error code in `perplexity::error_category()`.
/// The failures the retry policy retries are those of kind `transport`, `timeout` and `rate_limited`
/// and the `http_status` errors 408, 409 and 5xx, each only when the request is safe to send again
/// (see Client::create); an Error of those kinds comes after every retry that was allowed.
enum class ErrorKind {
    /// The caller passed something unusable: bad ClientOptions (see `Client::configuration_error`), an
    /// empty model, messages or job id, an empty idempotency key, a list limit of 0. Nothing was sent;
    /// fix the call.
    invalid_argument = 1,
    /// Resolving, connecting, reading or writing failed, or the connection closed early (also a reset or
    /// close during the TLS handshake). Retried already; try again later.
    transport,
    /// TLS refused the server: an untrusted, expired or wrong-host certificate (`message` has OpenSSL's
    /// reason), or no common protocol version of TLS 1.2 or newer. Nothing, the key included, was sent.
    /// Retrying does not help: fix the trusted CAs (ClientOptions::ca_file) or the base URL.
    tls,
    /// A ClientOptions timeout (connect, TLS handshake, request) expired; `message` names the step and
    /// the option. Also: in `run`, the PollPolicy deadline passed before the create was answered.
    timeout,
    /// The operation was cancelled by the caller. From `wait` and `run`, `job_id` (once known) and
    /// `job` (once seen) say where the job was.
    cancelled,
    /// The server's HTTP response broke the protocol or a configured limit (body or header too large).
    /// Usually something other than the API answered (check `base_url` and any proxy); raise
    /// ClientOptions::max_response_body only for answers that are really that large.
    protocol,
    /// The API answered with an HTTP error status other than 429; see `http_status`, `api_type` and
    /// `api_message`. 401: check the key; 404 from get or wait: the job id is unknown or expired (or
    /// `path_prefix` is wrong); 400 and 422: the request's parameters.
    http_status,
    /// The API answered 429 Too Many Requests, after the retries the policy allows. Slow down, e.g. with
    /// ClientOptions::create_requests_per_minute.
    rate_limited,
    /// The response body was not the JSON the contract promises; see `json_path`. Also an answer about
    /// another job than the one asked for.
    decode,
    /// The job reached FAILED; `job` is the job and `api_message` its `error_message`. For the Agent
    /// API: the response reached `failed`; `response` is the response and `api_message`/`api_type` its
    /// `error` object.
    job_failed,
    /// A wait's deadline passed while the job was still running: the job may still complete, and
    /// `job_id` says which one to wait on again.
    wait_deadline,
    /// Agent API: the response was cancelled on the server (by `Client::cancel_response`, by
    /// `ResponseWaitOptions::cancel_on_abandon`, or by someone else with the same key); `response` is
    /// the cancelled response. Not the caller cancelling an operation (that is `cancelled`).
    response_cancelled,
    /// The ledger (ClientOptions::ledger) could not record or read what it must: a full disk, a
    /// read-only or locked file, a corrupt, foreign or newer ledger. `message` names the file and the
    /// cause. When the intent of a create could not be recorded, the create was not sent.
    ledger,
    /// A fleet's ledger (e.g. PostgresLedger) gave the run's entry to another replica, because this
    /// one's lease on it expired (the database was out of reach, or the process stalled). The other
    /// replica carries the job on and reports its outcome; this one stopped waiting and recorded
    /// nothing. `job_id` says which job, when known. Not a failure of the job.
    taken_over,
};

/// A short stable name for a kind, e.g. "rate_limited".
constexpr const char* to_string(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::invalid_argument:
            return "invalid_argument";
        case ErrorKind::transport:
            return "transport";
        case ErrorKind::tls:
            return "tls";
        case ErrorKind::timeout:
            return "timeout";
        case ErrorKind::cancelled:
            return "cancelled";
        case ErrorKind::protocol:
            return "protocol";
        case ErrorKind::http_status:
            return "http_status";
        case ErrorKind::rate_limited:
            return "rate_limited";
        case ErrorKind::decode:
            return "decode";
        case ErrorKind::job_failed:
            return "job_failed";
        case ErrorKind::wait_deadline:
            return "wait_deadline";
        case ErrorKind::response_cancelled:
            return "response_cancelled";
        case ErrorKind::ledger:
            return "ledger";
        case ErrorKind::taken_over:
            return "taken_over";
    }
    return "unknown";
}

namespace detail {
class ErrorCategory final : public boost::system::error_category {
  public:
    // A fixed identifier, so that two instances of the category (one per shared library, say) compare
    // equal; Boost compares categories by it rather than by address when it is not 0.
    constexpr ErrorCategory() noexcept : boost::system::error_category(0x70706c7861737963ULL) {}
    const char* name() const noexcept override { return "perplexity"; }
    std::string message(int value) const override {
        switch (static_cast<ErrorKind>(value)) {
            case ErrorKind::invalid_argument:
                return "invalid argument";
            case ErrorKind::transport:
                return "transport failure";
            case ErrorKind::tls:
                return "TLS failure";
            case ErrorKind::timeout:
                return "timed out";
            case ErrorKind::cancelled:
                return "cancelled";
            case ErrorKind::protocol:
                return "HTTP protocol violation";
            case ErrorKind::http_status:
                return "API error status";
            case ErrorKind::rate_limited:
                return "rate limited by the API";
            case ErrorKind::decode:
                return "unexpected response body";
            case ErrorKind::job_failed:
                return "job failed";
            case ErrorKind::wait_deadline:
                return "wait deadline passed";
            case ErrorKind::response_cancelled:
                return "response cancelled on the server";
            case ErrorKind::ledger:
                return "ledger failure";
            case ErrorKind::taken_over:
                return "taken over by another replica";
        }
        return "unknown perplexity error";
    }
};
}  // namespace detail

/// The category of every `ErrorKind` error code, named "perplexity". It converts to a
/// `std::error_category` where one is needed.
inline const boost::system::error_category& error_category() noexcept {
    static const detail::ErrorCategory category;
    return category;
}

/// `kind` as an error code; lets `boost::system::error_code ec = ErrorKind::timeout;`,
/// `std::error_code ec = ErrorKind::timeout;` and `ec == ErrorKind::timeout` work.
inline boost::system::error_code make_error_code(ErrorKind kind) noexcept {
    return {static_cast<int>(kind), error_category()};
}

/// A failed operation. A plain value that owns its members (`job` is shared and immutable), so it can
/// outlive the Client and the operation. Cheap to move; printable with `operator<<`.
struct Error {
    /// What kind of failure this is; see ErrorKind for what to do about each.
    ErrorKind kind = ErrorKind::transport;
    /// Our own description: what went wrong and, where it helps, what to do about it.
    std::string message{};
    /// The HTTP status of the response, or 0 when there was none.
    int http_status = 0;
    /// The API's own error type (e.g. "authentication_error"), when its body said one.
    std::string api_type{};
    /// The API's own message (or the job's `error_message` for job_failed), with the API key removed.
    std::string api_message{};
    /// The request field the API's error names (`error.param`), e.g. the unknown field of an Agent API
    /// 400.
    std::string api_param{};
    /// A bounded, printable excerpt of a body that was not a recognised error envelope.
    std::string body_excerpt{};
    /// For decode errors: where in the body the problem is, e.g. "$.response.choices[0].message".
    std::string json_path{};
    /// The job this error concerns, whenever one is known: always from get and wait, from run once the
    /// job exists, and from a decode error of a body that named its job.
    std::optional<std::string> job_id{};
    /// The job as last seen, for job_failed (the FAILED job), wait_deadline and a cancelled wait.
    std::shared_ptr<const Job> job{};
    /// Agent API: the response as last seen, for job_failed (the failed response), response_cancelled,
    /// wait_deadline and a cancelled wait; `job_id` is its id.
    std::shared_ptr<const Response> response{};
    /// The lower-level cause (an Asio, Beast, SSL or JSON error code) where there was one.
    boost::system::error_code cause{};
    /// For a failed `create` or the create of `run` (before the job's id is known): whether a job may
    /// exist anyway, because some attempt may have reached the API and was not refused by it. Worked out
    /// from what each attempt showed, not from the kind: a connection refused, a 429 or a 401 leave it
    /// false. When true, create again with `idempotency_key` (the API then answers with the job the key
    /// made, if any), or list recent jobs; when false, no job was made.
    bool job_may_exist = false;
    /// The idempotency key the create was sent with, when it had one (`run` always has one). Pass it as
    /// WaitOptions::idempotency_key, or to `create`, to pick up the job it may have made.
    std::optional<std::string> idempotency_key{};

    /// This error's kind as an error code, comparable with `ErrorKind` values; the same type as `cause`
    /// (see the top of this header for why both are Boost's).
    boost::system::error_code code() const noexcept { return make_error_code(kind); }

    /// Member-wise equality; `job` compares by pointer.
    friend bool operator==(const Error&, const Error&) = default;
};

/// Writes a one-line description: the kind and our message, then what the server said, the cause and
/// the job where there are any. A create refused for a wrong API key, for example, writes this (one
/// line, wrapped here):
/// @code{.unparsed}
/// http_status: the API refused the API key; check ClientOptions::api_key (PERPLEXITY_API_KEY)
///     (HTTP 401 authentication_error: Invalid API key)
/// @endcode
inline std::ostream& operator<<(std::ostream& out, const Error& error) {
    out << to_string(error.kind) << ": " << error.message;
    if (error.http_status != 0 || !error.api_type.empty() || !error.api_message.empty() ||
        !error.api_param.empty()) {
        out << " (";
        const char* separator = "";
        if (error.http_status != 0) {
            out << "HTTP " << error.http_status;
            separator = " ";
        }
        if (!error.api_type.empty()) {
            out << separator << error.api_type;
            separator = " ";
        }
        if (!error.api_message.empty()) {
            out << (*separator ? ": " : "") << error.api_message;
        }
        if (!error.api_param.empty()) {
            out << " [param " << error.api_param << ']';
        }
        out << ')';
    }
    if (!error.body_excerpt.empty()) {
        out << " body: \"" << error.body_excerpt << '"';
    }
    if (!error.json_path.empty()) {
        out << " at " << error.json_path;
    }
    if (error.cause) {
        out << " [" << error.cause.category().name() << ':' << error.cause.value() << ' '
            << error.cause.message() << ']';
    }
    if (error.job_id) {
        out << " [job " << *error.job_id << ']';
    }
    return out;
}

/// Whether trying the same operation again later may succeed: a transport failure, a timeout, a 429,
/// or an HTTP 408, 409 or 5xx. The library has already retried these as far as its RetryPolicy and the
/// request's safety allowed; this is for deciding what a caller does next (e.g. keep a batch item for a
/// later run). A retried create must carry the same idempotency key (`Error::idempotency_key`) when
/// `job_may_exist` is true, or it may make a second job.
inline bool is_retryable(const Error& error) noexcept {
    switch (error.kind) {
        case ErrorKind::transport:
        case ErrorKind::timeout:
        case ErrorKind::rate_limited:
            return true;
        case ErrorKind::http_status:
            return error.http_status == 408 || error.http_status == 409 || error.http_status >= 500;
        default:
            return false;
    }
}

/// The `operator<<` line as a string.
inline std::string to_string(const Error& error) {
    std::ostringstream out;
    out << error;
    return out.str();
}

}  // namespace perplexity

// ErrorKind values convert to std::error_code, and to boost::system::error_code, which accepts the
// enums std::is_error_code_enum names (Boost 1.81, the oldest the library supports, does).
template <>
struct std::is_error_code_enum<perplexity::ErrorKind> : std::true_type {};
