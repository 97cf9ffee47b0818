// The request machine: every decision about one request (one create, get or list, with its retries),
// and nothing else. It takes what happened (the time now, the answer's status and hints, a failure, a
// cancellation) and returns the next action as data: sleep until, send, or finish. It reads no clock and
// touches no socket, so every branch is a row in tests/unit/request_machine_tests.cpp and a fuzzer can
// drive it (fuzz/fuzz_machines.cpp); the driver in detail/drivers.hpp only awaits and feeds back.
#pragma once

#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/pacer.hpp>
#include <perplexity/error.hpp>
#include <perplexity/retry.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace perplexity::detail {

using Clock = std::chrono::steady_clock;

/// No deadline: the largest time point.
constexpr Clock::time_point no_deadline() noexcept {
    return Clock::time_point::max();
}

/// What the deadline leaves from `now`, in whole milliseconds (the largest count when there is none).
constexpr std::chrono::milliseconds time_left(Clock::time_point deadline, Clock::time_point now) noexcept {
    if (deadline == no_deadline()) {
        return std::chrono::milliseconds::max();
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
}

/// What an HTTP answer says to the machine: its status and the server's retry hints, already parsed.
struct Reply {
    int status = 0;
    /// retry-after-ms or retry-after, unclamped.
    std::optional<std::chrono::milliseconds> retry_hint{};
    /// x-should-retry, when the server said.
    std::optional<bool> should_retry{};
};

/// A request that got no answer.
struct SendFailure {
    Error error;
    /// Whether the server may have received the whole request (and so acted on it).
    bool may_have_arrived = false;
};

/// Records on a failed create's Error what its attempts showed: the key it carried, and whether a job
/// may exist although the Error names none.
inline void note_create_attempts(Error& error, const std::optional<std::string>& idempotency_key,
                                 bool may_have_acted) {
    error.idempotency_key = idempotency_key;
    error.job_may_exist = !error.job_id && may_have_acted;
    if (error.job_may_exist && !idempotency_key) {
        error.message +=
            "; list recent jobs to find out, and pass an idempotency_key so that a retry cannot "
            "create a second job";
    }
}

/// What the driver does next.
struct RequestStep {
    enum class Action {
        /// Wait until `until`: for a pacing slot (`retrying` null), or before a retry (`retrying` says
        /// why, `delay` how long, `attempt` which attempt failed).
        sleep,
        /// Send attempt number `attempt`; the deadline leaves it `budget`.
        send,
        /// Take a slot of the fleet's create pace (ClientOptions::shared_create_pace) and feed what it
        /// says to `RequestMachine::reserved` or `reservation_failed`.
        reserve,
        /// Done: `RequestMachine::finished_with_answer`, `error` and the facts say how.
        finish,
    };
    Action action = Action::finish;
    Clock::time_point until{};
    std::chrono::milliseconds budget{};
    std::chrono::milliseconds delay{};
    unsigned attempt = 0;
    const Error* retrying = nullptr;
    /// With a shared pace: a 429 asks the whole fleet to pause its creates this long, from now.
    std::chrono::milliseconds pause_fleet{};
};

/// One request's decisions: pacing slot, send, classify the outcome, retry after a delay or give up,
/// all within the deadline. `resend_safe` says the request may be sent again after it may have
/// arrived: a get, a list, or a create with an idempotency key. `shared_pace` says every attempt also
/// takes a slot of a pace shared with other processes (the local `pacer` then only pauses).
class RequestMachine {
  public:
    RequestMachine(const RetryPolicy& policy, Pacer& pacer, bool resend_safe, Clock::time_point deadline,
                   bool shared_pace = false)
        : policy_(policy),
          pacer_(pacer),
          deadline_(deadline),
          resend_safe_(resend_safe),
          shared_pace_(shared_pace) {}

    /// The first step, asked at `now`.
    RequestStep start(Clock::time_point now) { return take_slot(now, true); }

    /// A sleep ended at `now`.
    RequestStep woke(Clock::time_point now) {
        if (state_ == State::backing_off) {
            // After its own 429 a request already waited out its share of the pause.
            return take_slot(now, !last_was_rate_limited_);
        }
        if (time_left(deadline_, now) <= std::chrono::milliseconds(0)) {
            return give_up_for_deadline(deadline_passed_before_sending());
        }
        return send(now);
    }

    /// The shared pace gave a slot `wait` after `now`: the attempt goes then, or at the local slot if
    /// that is later, unless the deadline passes first.
    RequestStep reserved(std::chrono::milliseconds wait, Clock::time_point now) {
        const Clock::time_point slot = std::max(local_slot_, now + std::max(wait, std::chrono::milliseconds(0)));
        if (slot >= deadline_) {
            return give_up_for_deadline(deadline_passes_before_pacing());
        }
        if (slot > now) {
            state_ = State::pacing;
            return {.action = RequestStep::Action::sleep, .until = slot, .attempt = attempt_};
        }
        return send(now);
    }

    /// The shared pace could not give a slot: nothing is sent, and `error` is the result.
    RequestStep reservation_failed(Error error) {
        set_error(std::move(error));
        return finish();
    }

    /// The attempt was answered, at `now`; `random_unit` in [0, 1) jitters a backoff.
    RequestStep answered(const Reply& reply, Clock::time_point now, double random_unit) {
        const int status = reply.status;
        if (status >= 200 && status < 300) {
            may_have_acted_ = true;
            return finish_with_answer();
        }
        // A 429 or 408 means the server did not act on the request, so even a create without a key may
        // go again; after other statuses only a request that is safe to repeat may, whatever
        // x-should-retry says: it can stop a retry, but not make a second job safe.
        const bool refused_unprocessed = status == 429 || status == 408;
        // Other 4xx refuse the request without acting on it; a 409 is another request with the same key
        // still in progress, and a 5xx may come after the server acted.
        if (!refused_unprocessed && (status >= 500 || status == 409 || status < 400)) {
            may_have_acted_ = true;
        }
        const bool retry =
            (resend_safe_ || refused_unprocessed) && reply.should_retry.value_or(is_retryable_status(status));
        const auto delay = retry_delay(policy_, attempt_, reply.retry_hint, random_unit);
        last_was_rate_limited_ = status == 429;
        if (status == 429) {
            // Every request of this kind waits, not only this one: they share the limit. The pause is
            // the delay this request itself sleeps, jitter included, so what it reports is what it waits.
            pacer_.pause_until(now + delay);
        }
        const std::chrono::milliseconds pause_fleet =
            status == 429 && shared_pace_ ? delay : std::chrono::milliseconds(0);
        if (!retry || attempt_ >= policy_.max_attempts) {
            RequestStep step = finish_with_answer();
            step.pause_fleet = pause_fleet;
            return step;
        }
        set_error(refused_with_status(status));
        RequestStep step = back_off(now, delay, true);
        step.pause_fleet = pause_fleet;
        return step;
    }

    /// The attempt got no answer, at `now`.
    RequestStep failed(SendFailure failure, Clock::time_point now, double random_unit) {
        may_have_acted_ = may_have_acted_ || failure.may_have_arrived;
        set_error(std::move(failure.error));
        last_was_rate_limited_ = false;
        const bool transient = error_->kind == ErrorKind::transport || error_->kind == ErrorKind::timeout;
        const bool retry = transient && (resend_safe_ || !failure.may_have_arrived);
        if (!retry || attempt_ >= policy_.max_attempts) {
            return finish();
        }
        return back_off(now, retry_delay(policy_, attempt_, std::nullopt, random_unit), false);
    }

    /// The operation was cancelled while the current step was under way (`ec` is Asio's reason). A
    /// cancellation that interrupts a send may come after the request left.
    RequestStep interrupted(const boost::system::error_code& ec) {
        if (state_ == State::sending) {
            may_have_acted_ = true;
        }
        set_error(cancelled(ec, state_ == State::sending ? "while the request was under way"
                                                         : "while waiting to send the request"));
        return finish();
    }

    /// Whether the request finished with its last HTTP answer (2xx, or an error status not retried),
    /// which the driver turns into the result. Otherwise `error()` is the result.
    bool finished_with_answer() const noexcept { return finished_with_answer_; }
    /// Why the request failed, when it did not finish with an answer.
    Error& error() noexcept { return *error_; }
    /// The request was given up because a retry or a pacing slot would end after the deadline.
    bool gave_up_for_deadline() const noexcept { return gave_up_for_deadline_; }
    /// Some attempt may have reached the server and been acted on: for a create, a job may exist.
    bool may_have_acted() const noexcept { return may_have_acted_; }

  private:
    enum class State { pacing, reserving, sending, backing_off, done };

    void set_error(Error error) {
        if (error_) {
            *error_ = std::move(error);
        } else {
            error_ = std::make_unique<Error>(std::move(error));
        }
    }

    RequestStep take_slot(Clock::time_point now, bool honour_pause) {
        const Clock::time_point slot = pacer_.next_slot(now, honour_pause);
        if (slot >= deadline_) {
            return give_up_for_deadline(deadline_passes_before_pacing());
        }
        pacer_.take(slot);
        if (shared_pace_) {
            local_slot_ = slot;
            state_ = State::reserving;
            return {.action = RequestStep::Action::reserve, .attempt = attempt_};
        }
        if (slot > now) {
            state_ = State::pacing;
            return {.action = RequestStep::Action::sleep, .until = slot, .attempt = attempt_};
        }
        return send(now);
    }

    RequestStep send(Clock::time_point now) {
        state_ = State::sending;
        return {
            .action = RequestStep::Action::send, .budget = time_left(deadline_, now), .attempt = attempt_};
    }

    RequestStep back_off(Clock::time_point now, std::chrono::milliseconds delay, bool with_answer) {
        if (delay >= time_left(deadline_, now)) {
            // The last answer, if there was one, says more than "too late": it is the result.
            gave_up_for_deadline_ = true;
            return with_answer ? finish_with_answer() : finish();
        }
        state_ = State::backing_off;
        const unsigned failed_attempt = attempt_++;
        return {.action = RequestStep::Action::sleep,
                .until = now + delay,
                .delay = delay,
                .attempt = failed_attempt,
                .retrying = &*error_};
    }

    RequestStep give_up_for_deadline(Error error) {
        gave_up_for_deadline_ = true;
        set_error(std::move(error));
        return finish();
    }

    RequestStep finish_with_answer() {
        finished_with_answer_ = true;
        return finish();
    }

    RequestStep finish() {
        state_ = State::done;
        return {.action = RequestStep::Action::finish, .attempt = attempt_};
    }

    const RetryPolicy& policy_;
    Pacer& pacer_;
    Clock::time_point deadline_;
    /// The local pacer's slot while a shared one is being reserved.
    Clock::time_point local_slot_{};
    /// On the heap: most requests never fail, and a request machine sits in the frame of every request
    /// in flight (thousands of them during a burst of creates).
    std::unique_ptr<Error> error_{};
    unsigned attempt_ = 1;
    State state_ = State::pacing;
    bool resend_safe_;
    bool shared_pace_;
    bool last_was_rate_limited_ = false;
    bool finished_with_answer_ = false;
    bool gave_up_for_deadline_ = false;
    bool may_have_acted_ = false;
};

}  // namespace perplexity::detail
