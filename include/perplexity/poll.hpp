/// @file
/// PollPolicy, how `wait` and `run` pace their polls and when they give up.
///
/// Pure functions of the policy, the poll number, the time left and a random number: no I/O, safe from
/// any thread.
#pragma once

#include <perplexity/backoff.hpp>

#include <algorithm>
#include <chrono>

namespace perplexity {

/// How a job is polled until it ends. The defaults suit deep-research jobs, which take minutes: quick
/// first looks, then a calm pace, well within the API's get limit (6000 a minute).
struct PollPolicy {
    /// The sleep before poll number n is delay n of this Backoff; the first is the sleep before the
    /// first poll after create (or the first poll of `wait`, after an initial get). Default 1 s,
    /// growing 1.5 times per poll up to 15 s, with jitter 0.2, so thousands of jobs do not poll in
    /// lockstep. A braced `.backoff = {...}` starts from Backoff's own defaults (RetryPolicy's); set
    /// single members (`policy.backoff.initial = ...`) to keep the rest of these.
    Backoff backoff{
        .initial = std::chrono::seconds(1), .growth = 1.5, .max = std::chrono::seconds(15), .jitter = 0.2};
    /// The whole `run` or `wait`, from the call: create, retries, waits for a connection, polls and
    /// sleeps together. Each request gets at most the time left. When it passes with the job still
    /// running, the result is an ErrorKind::wait_deadline error carrying the job id; when it passes
    /// before `run`'s create was answered, an ErrorKind::timeout error naming the idempotency key.
    std::chrono::milliseconds deadline = std::chrono::minutes(30);
    /// When the next delay would cross the deadline, one last poll is made this long before it
    /// instead, so a job that finished in the meantime is not reported as timed out.
    std::chrono::milliseconds last_poll_margin = std::chrono::milliseconds(500);
};

/// The delay before poll number `poll` (1 for the first): `backoff_delay(policy.backoff, poll,
/// random_unit)`, with `random_unit` in [0, 1).
inline std::chrono::milliseconds poll_delay(const PollPolicy& policy, unsigned poll, double random_unit) {
    return backoff_delay(policy.backoff, poll, random_unit);
}

/// A planned sleep: how long, and whether the poll after it is the last one before the deadline.
struct PlannedSleep {
    /// How long to sleep before the next poll.
    std::chrono::milliseconds delay{};
    /// The poll after this sleep is the last one before the deadline.
    bool last_poll = false;
    /// Nothing fits any more: the deadline is too close for another poll.
    bool deadline_reached = false;

    /// Member-wise equality.
    friend bool operator==(const PlannedSleep&, const PlannedSleep&) = default;
};

/// Fits a wanted delay into the time `remaining` before the deadline: unchanged when it ends before the
/// last-poll margin; otherwise shortened to end `margin` before the deadline and marked as the last
/// poll; and when even that is in the past, the deadline is reached.
inline PlannedSleep fit_to_deadline(std::chrono::milliseconds wanted, std::chrono::milliseconds remaining,
                                    std::chrono::milliseconds margin) {
    using std::chrono::milliseconds;
    if (remaining <= milliseconds(0)) {
        return {milliseconds(0), false, true};
    }
    if (wanted + margin < remaining) {
        return {wanted, false, false};
    }
    return {std::max(milliseconds(0), remaining - margin), true, false};
}

}  // namespace perplexity
