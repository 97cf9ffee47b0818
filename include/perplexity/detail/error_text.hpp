// The wording of every Error the library makes itself, in one place: what went wrong, in the user's
// terms (the option to change, the id or key to keep), never the API key. Pure functions of their
// arguments; the machines and drivers only choose which one applies.
#pragma once

#include <perplexity/detail/io_step.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/options.hpp>
#include <perplexity/response.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity::detail {

/// What an HTTP error status means for this API.
inline std::string describe_status(int status) {
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

/// An answer with the error status `status`: rate_limited for a 429, http_status otherwise.
inline Error refused_with_status(int status) {
    return Error{.kind = status == 429 ? ErrorKind::rate_limited : ErrorKind::http_status,
                 .message = describe_status(status),
                 .http_status = status};
}

inline Error invalid_argument(std::string message) {
    return Error{.kind = ErrorKind::invalid_argument, .message = std::move(message)};
}

/// The operation was cancelled `during` something; `ec` is Asio's reason.
inline Error cancelled(const boost::system::error_code& ec, std::string_view during) {
    return Error{.kind = ErrorKind::cancelled,
                 .message = "the operation was cancelled " + std::string(during),
                 .cause = ec};
}

inline Error deadline_passes_before_pacing() {
    return Error{.kind = ErrorKind::timeout,
                 .message = "the deadline passes before pacing lets this request go"};
}

inline Error deadline_passed_before_sending() {
    return Error{.kind = ErrorKind::timeout, .message = "the deadline passed"};
}

inline Error deadline_passed_waiting_for_connection() {
    return Error{.kind = ErrorKind::timeout, .message = "the deadline passed while waiting for a connection"};
}

inline Error no_free_connection(bool was_cancelled, std::size_t max_connections) {
    if (was_cancelled) {
        return Error{.kind = ErrorKind::cancelled,
                     .message = "the operation was cancelled while waiting for a free connection"};
    }
    return Error{.kind = ErrorKind::timeout,
                 .message =
                     "the deadline passed while every connection was busy "
                     "(ClientOptions::max_connections = " +
                     std::to_string(max_connections) + ")"};
}

namespace io_wording {

inline std::chrono::milliseconds timeout_for(IoStep step, const ClientOptions& options) {
    switch (step) {
        case IoStep::resolve:
        case IoStep::connect:
            return options.connect_timeout;
        case IoStep::tls_handshake:
            return options.tls_handshake_timeout;
        default:
            return options.request_timeout;
    }
}

inline const char* timeout_option_for(IoStep step) {
    switch (step) {
        case IoStep::resolve:
        case IoStep::connect:
            return "connect_timeout";
        case IoStep::tls_handshake:
            return "tls_handshake_timeout";
        default:
            return "request_timeout";
    }
}

}  // namespace io_wording

/// An exchange with `peer` that failed. `budget` is what the operation's deadline left for the attempt,
/// which may be less than the step's own timeout; a timeout then names the deadline.
inline Error describe(const IoFailure& failure, std::chrono::milliseconds budget,
                      const ClientOptions& options, std::string_view peer_name) {
    namespace http = boost::beast::http;
    const std::string step = to_string(failure.step);
    const std::string peer(peer_name);
    Error error{.cause = failure.ec};
    if (failure.ec == boost::asio::error::operation_aborted) {
        error.kind = ErrorKind::cancelled;
        error.message = "the operation was cancelled during " + step;
    } else if (failure.ec == boost::beast::error::timeout) {
        error.kind = ErrorKind::timeout;
        const auto limit = io_wording::timeout_for(failure.step, options);
        error.message =
            step + " with " + peer + " timed out after " + std::to_string(std::min(limit, budget).count()) +
            " ms (" + (budget < limit ? std::string("what the operation's deadline left, less than ") : "") +
            "ClientOptions::" + io_wording::timeout_option_for(failure.step) + ")";
    } else if (failure.step == IoStep::tls_handshake &&
               (!failure.verification_problem.empty() ||
                failure.ec.category() == boost::asio::error::get_ssl_category())) {
        // TLS itself refused (a certificate, a protocol version); a reset or a close during the
        // handshake falls through to a transport Error, which may be retried.
        error.kind = ErrorKind::tls;
        error.message = "the TLS handshake with " + peer + " failed: " +
                        (failure.verification_problem.empty()
                             ? failure.ec.message()
                             : "the server's certificate was refused (" + failure.verification_problem + ")");
    } else if (failure.ec == http::error::body_limit) {
        error.kind = ErrorKind::protocol;
        error.message = "the response body is larger than ClientOptions::max_response_body (" +
                        std::to_string(options.max_response_body) + " bytes); it was not read";
    } else if (failure.ec == http::error::header_limit) {
        error.kind = ErrorKind::protocol;
        error.message = "the response header is larger than ClientOptions::max_response_header (" +
                        std::to_string(options.max_response_header) + " bytes)";
    } else if (failure.ec.category() == http::make_error_code(http::error::bad_version).category() &&
               failure.ec != http::error::end_of_stream && failure.ec != http::error::partial_message) {
        error.kind = ErrorKind::protocol;
        error.message = "the response from " + peer + " is not valid HTTP/1.1 (" + failure.ec.message() + ")";
    } else if (failure.step == IoStep::read_header && failure.nothing_received) {
        error.message = "the server " + peer + " closed the connection before answering";
    } else {
        error.message = step + " with " + peer + " failed: " + failure.ec.message();
    }
    return error;
}

/// Added to a failure of a request that is not safe to repeat and may have reached the server.
inline void note_may_have_acted(Error& error) {
    error.message += "; the request was sent, so the server may have acted on it";
}

/// Says, in the message of a failed create of `run`, what the attempts showed about the job: it may
/// exist (and the key picks it up), or it provably does not.
inline void note_run_create_outcome(Error& error) {
    const bool unclear = error.kind == ErrorKind::timeout || error.kind == ErrorKind::transport ||
                         error.kind == ErrorKind::cancelled || error.kind == ErrorKind::rate_limited;
    if (error.job_may_exist && error.idempotency_key) {
        error.message +=
            "; to pick up the job if it was created, run again with WaitOptions::idempotency_key = \"" +
            *error.idempotency_key + "\"";
    } else if (unclear && !error.job_may_exist) {
        error.message += "; no job was created: the create never reached the API, or the API refused it";
    }
}

inline Error job_failed(const Job& job) {
    Error error{.kind = ErrorKind::job_failed,
                .message = "job " + job.id + " failed",
                .api_message = job.error_message.value_or(""),
                .job_id = job.id};
    error.job = std::make_shared<const Job>(job);
    return error;
}

inline Error completed_without_answer(const Job& job) {
    Error error{.kind = ErrorKind::decode,
                .message = "job " + job.id + " is COMPLETED but the API sent no response with it",
                .json_path = "$.response",
                .job_id = job.id};
    error.job = std::make_shared<const Job>(job);
    return error;
}

inline Error answered_about_another_job(const std::string& asked, const std::string& answered) {
    return Error{.kind = ErrorKind::decode,
                 .message = "the API answered with job \"" + answered + "\" when asked for \"" + asked + "\"",
                 .json_path = "$.id",
                 .job_id = asked};
}

/// The wait's deadline (PollPolicy::deadline, `deadline`) passed with the `noun` `id` last seen in
/// `status` (empty when never seen).
inline Error wait_deadline_passed(std::chrono::milliseconds deadline, std::string_view noun,
                                  const std::string& id, std::string_view status) {
    return Error{.kind = ErrorKind::wait_deadline,
                 .message = "the wait deadline of " + std::to_string(deadline.count()) +
                            " ms (PollPolicy::deadline) passed while " + std::string(noun) + " " + id +
                            " was " + std::string(status.empty() ? "unknown" : status) +
                            "; it may still complete: wait on it again later",
                 .job_id = id};
}

/// The same for job `job_id`, as last seen (if ever) in `latest`.
inline Error wait_deadline_passed(std::chrono::milliseconds deadline, const std::string& job_id,
                                  const Job* latest) {
    Error error = wait_deadline_passed(deadline, "job", job_id, latest ? latest->status_text : std::string());
    if (latest) {
        error.job = std::make_shared<const Job>(*latest);
    }
    return error;
}

// The Agent API's own wording.

/// A failed create of the Agent API: no idempotency key and no list exist there, so a response that
/// may have been created can be neither picked up nor found; the message says so plainly.
inline void note_response_create_attempts(Error& error, bool may_have_acted) {
    error.job_may_exist = !error.job_id && may_have_acted;
    const bool unclear = error.kind == ErrorKind::timeout || error.kind == ErrorKind::transport ||
                         error.kind == ErrorKind::cancelled || error.kind == ErrorKind::rate_limited;
    if (error.job_may_exist) {
        error.message +=
            "; a response may have been created on the server all the same, and it cannot be looked up: "
            "the Agent API has no idempotency key and no list. The create was not sent again, so at most "
            "one run exists";
    } else if (unclear) {
        error.message += "; no response was created: the create never reached the API, or the API refused it";
    }
}

/// An ending of `response` as an Error of `kind`, carrying the API's `error` object and the response.
inline Error response_ended(ErrorKind kind, std::string message, const Response& response) {
    Error error{.kind = kind, .message = std::move(message), .job_id = response.id};
    if (response.error) {
        error.api_message = response.error->message;
        error.api_type = response.error->type.value_or("");
    }
    error.response = std::make_shared<const Response>(response);
    return error;
}

inline Error response_failed(const Response& response) {
    return response_ended(ErrorKind::job_failed, "response " + response.id + " failed", response);
}

inline Error response_cancelled_on_server(const Response& response) {
    return response_ended(ErrorKind::response_cancelled,
                          "response " + response.id + " was cancelled on the server", response);
}

inline Error answered_about_another_response(const std::string& asked, const std::string& answered) {
    return Error{
        .kind = ErrorKind::decode,
        .message = "the API answered with response \"" + answered + "\" when asked for \"" + asked + "\"",
        .json_path = "$.id",
        .job_id = asked};
}

/// Our words for a cancel the API refused: 400 (the response has already ended) and 404 (no such
/// response for this key) get their meaning; the API's own text stays in api_message.
inline void explain_cancel_refusal(Error& error, const std::string& id) {
    if (error.http_status == 400) {
        error.message = "response " + id +
                        " cannot be cancelled: it has already ended (completed, failed, "
                        "cancelled or waiting for a function's output)";
    } else if (error.http_status == 404) {
        error.message = "there is no response " + id +
                        " to cancel: the id is unknown, belongs to another account, or the response was "
                        "created with store = false";
    }
}

/// Added to the Error of an abandoned wait: what became of the run on the server.
inline void note_cancel_outcome(Error& error, const expected<CancelAcknowledgement, Error>& outcome) {
    if (outcome) {
        // It will not complete any more, so the deadline's advice to wait again no longer holds.
        constexpr std::string_view wait_again = "; it may still complete: wait on it again later";
        if (const auto at = error.message.find(wait_again); at != std::string::npos) {
            error.message.erase(at, wait_again.size());
        }
        error.message += "; the run was cancelled on the server (ResponseWaitOptions::cancel_on_abandon)";
    } else if (outcome.error().http_status == 400) {
        error.message += "; the run had already ended, so there was nothing to cancel on the server";
    } else {
        error.message += "; cancelling the run on the server failed (" + to_string(outcome.error()) +
                         "): it may still be running and billed, cancel it with Client::cancel_response";
    }
}

// The ledger's.

/// The intent of a create could not be recorded (`cause` says why), so the create was not sent.
inline Error intent_not_recorded(const Error& cause) {
    return Error{.kind = ErrorKind::ledger,
                 .message = "the create was not sent, because the ledger could not record its intent: " +
                            cause.message,
                 .cause = cause.cause};
}

/// Entry `entry` of the ledger holds a request that cannot be sent again (`why`).
inline Error unusable_recorded_request(EntryId entry, const std::string& why) {
    return Error{.kind = ErrorKind::ledger,
                 .message = "ledger entry " + std::to_string(entry) +
                            " holds a request that is not a JSON object (" + why +
                            "), so it was not sent again; fix or drop the entry"};
}

/// The ledger no longer holds entry `entry`: another replica of the fleet took it over.
inline Error entry_taken_over(EntryId entry, std::string_view job_id) {
    std::string message = "ledger entry " + std::to_string(entry) +
                          " was taken over by another replica (this one's lease on it expired), which "
                          "carries the job on and reports its outcome; this replica stopped waiting";
    Error error{.kind = ErrorKind::taken_over, .message = std::move(message)};
    if (!job_id.empty()) {
        error.job_id = std::string(job_id);
    }
    return error;
}

/// `Client::resume` with no ClientOptions::ledger.
inline Error resume_without_ledger() {
    return invalid_argument("resume needs a ledger to read: set ClientOptions::ledger");
}

}  // namespace perplexity::detail
