/// @file
/// Event, what a Client reports to an observability hook (ClientOptions::on_event), and a ready-made
/// logger.
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/job.hpp>
#include <perplexity/response.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

namespace perplexity {

/// Something a Client did on the wire or saw happen to a job; see ClientOptions::on_event. Which
/// members are set depends on `kind`; the others keep their defaults. A view onto the Client's state:
/// the views and pointers are valid only during the handler's call, so copy what you keep.
struct Event {
    /// What happened.
    enum class Kind {
        /// A request is about to be sent: `method`, `target`, `attempt` (1 for the first).
        request_sent,
        /// A response arrived: `http_status` and `latency` (from sending, connection set-up and any
        /// wait for a free connection included).
        response_received,
        /// A request got no response: `error` says why, `latency` how long it took to fail.
        request_failed,
        /// A failed request (`error`) will be sent again after `delay`; `attempt` is the one that failed.
        retry_scheduled,
        /// A create (of `create` or `run`) was answered with the job: `job`.
        job_created,
        /// A job that `wait` or `run` polls moved to a new status: `job` is the answer that showed it.
        job_status_changed,
        /// The ledger (ClientOptions::ledger) failed to record the job id, a status or the outcome of a
        /// job already created: `error` says why. The wait goes on (the job is paid for); the entry stays
        /// as it was, so `Client::resume` may wait on the job again, or report it if no id was kept.
        ledger_write_failed,
    };
    /// What happened; says which of the other members are set.
    Kind kind = Kind::request_sent;
    /// "GET" or "POST"; empty for job events.
    std::string_view method{};
    /// The request's path and query, e.g. "/async/chat/completions/ID"; never holds the API key.
    std::string_view target{};
    /// The job concerned, once known.
    std::string_view job_id{};
    /// For request events: which attempt of the request this is, 1 for the first.
    unsigned attempt = 0;
    /// For response_received: the response's status (error statuses included).
    int http_status = 0;
    /// For response_received and request_failed: from just before the request was queued to the
    /// response or the failure.
    std::chrono::microseconds latency{0};
    /// For retry_scheduled: the wait before the next attempt.
    std::chrono::milliseconds delay{0};
    /// For request_failed and retry_scheduled: why (redacted like every Error).
    const Error* error = nullptr;
    /// For job_created and job_status_changed: the job as just received.
    const Job* job = nullptr;
    /// For job_created and job_status_changed of the Agent API: the response as just received (`job` is
    /// then null, and `job_id` is the response's id).
    const Response* response = nullptr;
};

/// The kind's name, e.g. "response_received".
constexpr const char* to_string(Event::Kind kind) noexcept {
    switch (kind) {
        case Event::Kind::request_sent:
            return "request_sent";
        case Event::Kind::response_received:
            return "response_received";
        case Event::Kind::request_failed:
            return "request_failed";
        case Event::Kind::retry_scheduled:
            return "retry_scheduled";
        case Event::Kind::job_created:
            return "job_created";
        case Event::Kind::job_status_changed:
            return "job_status_changed";
        case Event::Kind::ledger_write_failed:
            return "ledger_write_failed";
    }
    return "unknown";
}

/// Called synchronously on the Client's executor, in the middle of the operation, so it should be
/// quick; a handler shared by Clients on different threads must synchronise itself. The event and
/// what it points to live only for the duration of the call. An exception thrown by the handler is
/// swallowed: observing must not change what the Client does. The Client keeps its own copy of the
/// handler, so what the handler refers to must outlive the Client.
using EventHandler = std::function<void(const Event&)>;

/// How much `event_logger` writes.
enum class LogLevel {
    /// Job creations, status changes, failed requests and retries.
    info,
    /// Also every request and response, with its status and latency.
    debug,
};

/// "info" or "debug" (any case); anything else is nullopt. "off" and "" are nullopt too.
inline std::optional<LogLevel> parse_log_level(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    if (lower == "debug") {
        return LogLevel::debug;
    }
    if (lower == "info") {
        return LogLevel::info;
    }
    return std::nullopt;
}

/// Whether `level` writes events of this kind.
constexpr bool is_logged_at(LogLevel level, Event::Kind kind) noexcept {
    return level == LogLevel::debug ||
           (kind != Event::Kind::request_sent && kind != Event::Kind::response_received);
}

/// One line describing the event, without a line break, e.g.
/// `perplexity response_received GET /async/chat/completions/ID job=ID attempt=1 http_status=200
/// latency_ms=12.3` (`status=` is a job's status, for job events).
/// Built only from the event's fields, none of which carries the API key (Errors are redacted).
inline std::string format_event(const Event& event) {
    std::ostringstream line;
    line << "perplexity " << to_string(event.kind);
    if (!event.method.empty()) {
        line << ' ' << event.method << ' ' << event.target;
    }
    if (!event.job_id.empty()) {
        line << " job=" << event.job_id;
    }
    if (event.response != nullptr) {
        line << " status=" << event.response->status_text;
    }
    if (event.job != nullptr) {
        line << " status=" << event.job->status_text;
    }
    if (event.attempt != 0) {
        line << " attempt=" << event.attempt;
    }
    if (event.http_status != 0) {
        line << " http_status=" << event.http_status;
    }
    if (event.kind == Event::Kind::response_received || event.kind == Event::Kind::request_failed) {
        char latency[32];
        std::snprintf(latency, sizeof latency, "%.1f", static_cast<double>(event.latency.count()) / 1000.0);
        line << " latency_ms=" << latency;
    }
    if (event.kind == Event::Kind::retry_scheduled) {
        line << " delay_ms=" << event.delay.count();
    }
    if (event.error != nullptr) {
        line << " error=\"" << *event.error << '"';
    }
    return line.str();
}

/// A handler writing `format_event` lines of the events `level` covers to `out` (e.g. std::clog), which
/// must outlive every Client using the handler. Each line is one write, flushed at once, on the
/// Client's thread: a slow stream slows the Client down.
inline EventHandler event_logger(std::ostream& out, LogLevel level) {
    return [&out, level](const Event& event) {
        if (is_logged_at(level, event.kind)) {
            // One write per line, so lines from Clients on other threads do not interleave mid-line.
            out << (format_event(event) + '\n') << std::flush;
        }
    };
}

}  // namespace perplexity
