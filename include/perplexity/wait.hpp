// perplexity-async: WaitOptions and the progress events of `Client::wait` and `Client::run`.
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

/// Something a waiting operation did or is about to do.
struct ProgressEvent {
    enum class Kind {
        /// `run` created the job; `job` is the create's answer.
        created,
        /// A poll answered; `job` is the answer. An answer whose status comes before one already seen
        /// (a stale read) is reported here and otherwise ignored.
        polled,
        /// The job's status differs from the last one seen, and moved forward; `job` is the answer.
        status_changed,
        /// A request failed and will be sent again after `delay`; `error` says why, `attempt` is the
        /// attempt that failed (1 for the first).
        retry_scheduled,
        /// The next poll comes after `delay`; `attempt` is that poll's number.
        sleeping,
    };
    Kind kind = Kind::polled;
    /// The job id, once known (empty for a create that has not answered yet).
    std::string_view job_id{};
    /// The job as just received, for created, polled and status_changed.
    const Job* job = nullptr;
    /// The failure, for retry_scheduled.
    const Error* error = nullptr;
    unsigned attempt = 0;
    std::chrono::milliseconds delay{0};
};

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

/// Called synchronously on the Client's executor; it must not throw. The event and what it points to
/// live only for the duration of the call.
using ProgressHandler = std::function<void(const ProgressEvent&)>;

/// Per-call settings of `Client::wait` and `Client::run`.
struct WaitOptions {
    /// Overrides the Client's `ClientOptions::poll` for this call.
    std::optional<PollPolicy> poll{};
    /// Sees every status change, poll, retry and sleep.
    ProgressHandler on_progress{};
    /// `run` only: sees the created job before the first poll, so the caller can persist its id.
    std::function<void(const Job&)> on_created{};
    /// `run` only: the idempotency key of the create. By default a fresh UUID v4 per call; pass the key
    /// of an earlier `run` whose outcome is unknown to pick up the job it may have created.
    std::optional<std::string> idempotency_key{};
};

}  // namespace perplexity
