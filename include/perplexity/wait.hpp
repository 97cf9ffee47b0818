/// @file
/// WaitOptions and the progress events of `Client::wait` and `Client::run`.
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/job.hpp>
#include <perplexity/poll.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity {

/// Something a waiting operation did or is about to do. Which members are set depends on `kind`. The
/// views and pointers are valid only during the handler's call.
///
/// Why a second event type beside `Event`: the two have different audiences and lifetimes. `Event`
/// (ClientOptions::on_event) is the Client's stream for logs and metrics: every request of every
/// operation, for the Client's whole life. A ProgressEvent is one `wait` or `run` telling its own
/// caller how that job is going (for a progress bar, or to persist the id the moment it exists): the
/// sleeps between polls and their numbering, which a log need not see, and nothing of other
/// operations. Both are made from the same steps of the same machines, so they cannot disagree.
struct ProgressEvent {
    /// What happened.
    enum class Kind {
        /// `run` created the job; `job` is the create's answer. A status_changed event for the same
        /// answer follows.
        created,
        /// A poll answered; `job` is the answer. An answer whose status comes before one already seen
        /// (a stale read) is reported here and otherwise ignored.
        polled,
        /// The job's status differs from the last one seen, and moved forward; `job` is the answer.
        status_changed,
        /// A request (the create of `run`, or a poll) failed and will be sent again after `delay`;
        /// `error` says why, `attempt` is the attempt that failed (1 for the first).
        retry_scheduled,
        /// The next poll comes after `delay`; `attempt` is that poll's number.
        sleeping,
    };
    /// What happened; says which of the other members are set.
    Kind kind = Kind::polled;
    /// The job id, once known (empty for a create that has not answered yet).
    std::string_view job_id{};
    /// The job as just received, for created, polled and status_changed.
    const Job* job = nullptr;
    /// For the Agent API's `wait_response` and `run_response`: the response as just received, for
    /// created, polled and status_changed (`job` is then null, and `job_id` is the response's id).
    const Response* response = nullptr;
    /// The failure, for retry_scheduled.
    const Error* error = nullptr;
    /// For retry_scheduled: the attempt that failed; for sleeping: the number of the poll to come.
    unsigned attempt = 0;
    /// For retry_scheduled and sleeping: how long until the next request.
    std::chrono::milliseconds delay{0};
};

/// The kind's name, e.g. "status_changed".
constexpr const char* to_string(ProgressEvent::Kind kind) noexcept {
    switch (kind) {
        case ProgressEvent::Kind::created:
            return "created";
        case ProgressEvent::Kind::polled:
            return "polled";
        case ProgressEvent::Kind::status_changed:
            return "status_changed";
        case ProgressEvent::Kind::retry_scheduled:
            return "retry_scheduled";
        case ProgressEvent::Kind::sleeping:
            return "sleeping";
    }
    return "unknown";
}

/// Called synchronously on the Client's executor; it must not throw (an exception would leave the
/// operation through its awaitable, abandoning the wait). The event and what it points to live only for
/// the duration of the call.
using ProgressHandler = std::function<void(const ProgressEvent&)>;

/// Per-call settings of `Client::wait` and `Client::run`. Copied into the operation; whatever the
/// handlers refer to must outlive it.
struct WaitOptions {
    /// Overrides the Client's `ClientOptions::poll` for this call.
    std::optional<PollPolicy> poll{};
    /// Sees every status change, poll, retry and sleep.
    ProgressHandler on_progress{};
    /// `run` only: sees the created job before the first poll, so the caller can persist its id. Same
    /// rules as `on_progress`: on the Client's executor, must not throw, the Job valid during the call.
    std::function<void(const Job&)> on_created{};
    /// `run` only: the idempotency key of the create. By default a fresh UUID v4 per call; pass the key
    /// of an earlier `run` whose outcome is unknown to pick up the job it may have created.
    std::optional<std::string> idempotency_key{};
    /// `run` only, with a ledger (ClientOptions::ledger): the caller's name for the job, stored with its
    /// entry (LedgerEntry::label), so that a resumed job can be matched with what asked for it.
    std::string label{};
};

/// Per-call settings of `Client::wait_response` and `Client::run_response` (the Agent API). Copied into
/// the operation; whatever the handlers refer to must outlive it.
struct ResponseWaitOptions {
    /// Overrides the Client's `ClientOptions::poll` for this call.
    std::optional<PollPolicy> poll{};
    /// Sees every status change, poll, retry and sleep; ProgressEvent::response is the response.
    ProgressHandler on_progress{};
    /// `run_response` only: sees the created response before the first poll, so the caller can persist
    /// its id (the Agent API has no list: a lost id cannot be found again). Same rules as `on_progress`.
    std::function<void(const Response&)> on_created{};
    /// Cancels the run on the server (`POST /v1/responses/{id}/cancel`) when this wait is abandoned
    /// while the response is still running: the caller cancels the operation, or the poll deadline
    /// passes. Off by default, because an abandoned wait does not mean an unwanted answer: another
    /// process may pick the id up, or the caller may wait again later, and a cancelled run is lost. Turn
    /// it on when nobody else will ever read the answer, so that it stops costing money. The cancel is
    /// one more request, sent even though the operation was cancelled and bounded by
    /// ClientOptions::request_timeout; its outcome is added to the Error's message.
    bool cancel_on_abandon = false;
    /// `run_response` only, with a ledger (ClientOptions::ledger): the caller's name for the run, stored
    /// with its entry (LedgerEntry::label).
    std::string label{};
};

}  // namespace perplexity
