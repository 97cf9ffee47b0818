// The wait machine: every decision of `wait` (poll, sleep, poll again until the job ends or the deadline
// passes) and of `run`'s settlement of its create, and nothing else. Like the request machine it takes
// what happened (an answer, a failure, the time now, a random number) and returns the next action and
// what to report, as data; it reads no clock and touches no socket.
#pragma once

#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/poll.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace perplexity::detail {

/// What the driver of a wait does next, and what it reports first.
struct WaitStep {
    enum class Action {
        /// Fetch the job (`WaitMachine::job_id`) and hand the answer to `polled`.
        poll,
        /// Sleep `delay` (which may be zero), then poll number `poll`.
        sleep,
        /// Done: `WaitMachine::result` is the outcome.
        finish,
    };
    Action action = Action::finish;
    std::chrono::milliseconds delay{};
    unsigned poll = 0;
    /// The job to report, valid until the next call to the machine: the create's answer (`created`),
    /// or a poll's answer (`polled`; a stale one too), which may show a new status (`status_changed`).
    const Job* job = nullptr;
    bool created = false;
    bool polled = false;
    bool status_changed = false;
};

/// Polls one job to its end within a deadline: COMPLETED (with its answer) is the result; FAILED, a
/// failed poll, the deadline or a cancellation is an Error that carries the job id and the job as last
/// seen. For `run`, the machine first settles the create: its answer is the first sight of the job.
class WaitMachine {
  public:
    WaitMachine(const PollPolicy& policy, Clock::time_point deadline, std::string job_id = {})
        : policy_(policy), deadline_(deadline), job_id_(std::move(job_id)) {}

    /// `wait`: nothing is known yet, so the first poll is made at once.
    WaitStep start() { return {.action = WaitStep::Action::poll}; }

    /// `run`: the create, sent with `idempotency_key`, came to `created`; `job_may_exist` is what its
    /// attempts showed. A failure ends the run, saying what became of the job and how to pick it up.
    WaitStep created(expected<Job, Error>& created, bool job_may_exist, const std::string& idempotency_key,
                     Clock::time_point now, double random_unit) {
        if (!created) {
            Error& error = created.error();
            note_create_attempts(error, idempotency_key, job_may_exist);
            note_run_create_outcome(error);
            return finish_with(std::move(error));
        }
        job_id_ = created->id;
        WaitStep step = see(std::move(*created), now, random_unit);
        step.created = true;
        step.status_changed = true;
        return step;
    }

    /// A poll came to `answer` at `now`; `gave_up_for_deadline` says its request stopped retrying
    /// because the deadline left no room. The machine takes the answer unless it is stale.
    WaitStep polled(expected<Job, Error>& answer, bool gave_up_for_deadline, Clock::time_point now,
                    double random_unit) {
        if (!answer) {
            return poll_failed(std::move(answer).error(), gave_up_for_deadline, now);
        }
        const Job* latest = latest_job();
        if (latest != nullptr && is_earlier(answer->status, latest->status)) {
            // Not news: a job never goes back, so keep what was already seen and poll again.
            WaitStep step = decide(now, random_unit);
            step.job = &*answer;
            step.polled = true;
            return step;
        }
        const bool changed = latest == nullptr || latest->status != answer->status ||
                             latest->status_text != answer->status_text;
        WaitStep step = see(std::move(*answer), now, random_unit);
        step.polled = true;
        step.status_changed = changed;
        return step;
    }

    /// A sleep ended: poll.
    WaitStep woke() { return {.action = WaitStep::Action::poll}; }

    /// The caller cancelled the wait (`ec` is Asio's reason); the Error keeps the job as last seen.
    WaitStep interrupted(const boost::system::error_code& ec) {
        Error error = cancelled(ec, job_id_.empty() ? "while creating the job" : "while waiting for the job");
        if (job_id_.empty()) {
            return finish_with(std::move(error));
        }
        return finish_with(with_job(std::move(error)));
    }

    /// The outcome, once the machine said finish.
    expected<Job, Error> result() && {
        if (auto* failure = std::get_if<Error>(&seen_)) {
            return unexpected(std::move(*failure));
        }
        return std::move(std::get<Job>(seen_));
    }

    /// The job's id: given to `wait`, or from `run`'s create.
    const std::string& job_id() const noexcept { return job_id_; }
    /// When the wait gives up.
    Clock::time_point deadline() const noexcept { return deadline_; }

  private:
    /// Takes `job` as the latest sight of the job and decides what follows; the step reports it.
    WaitStep see(Job&& job, Clock::time_point now, double random_unit) {
        seen_ = std::move(job);
        WaitStep step = decide(now, random_unit);
        step.job = job_seen();
        return step;
    }

    /// What to do after seeing the job: finish on a final status, else sleep until the next poll, the
    /// last one fitted in before the deadline.
    WaitStep decide(Clock::time_point now, double random_unit) {
        const Job& latest = std::get<Job>(seen_);
        if (latest.status == JobStatus::completed) {
            // A success without its answer would only fail later, in the caller's hands.
            return latest.response ? finish() : finish_with(completed_without_answer(latest));
        }
        if (latest.status == JobStatus::failed) {
            return finish_with(job_failed(latest));
        }
        if (last_poll_) {
            return finish_with(wait_deadline_passed(policy_.deadline, job_id_, &latest));
        }
        ++polls_;
        const PlannedSleep sleep = fit_to_deadline(poll_delay(policy_, polls_, random_unit),
                                                   time_left(deadline_, now), policy_.last_poll_margin);
        if (sleep.deadline_reached) {
            return finish_with(wait_deadline_passed(policy_.deadline, job_id_, &latest));
        }
        last_poll_ = sleep.last_poll;
        return {.action = WaitStep::Action::sleep, .delay = sleep.delay, .poll = polls_};
    }

    WaitStep poll_failed(Error error, bool gave_up_for_deadline, Clock::time_point now) {
        if (error.kind != ErrorKind::cancelled &&
            (gave_up_for_deadline || time_left(deadline_, now) <= std::chrono::milliseconds(0))) {
            // A poll that would have been retried but for the deadline ends the wait by its deadline;
            // the poll's own failure is kept in the message.
            Error late = wait_deadline_passed(policy_.deadline, job_id_, latest_job());
            late.message += "; the last poll failed: " + to_string(error);
            return finish_with(std::move(late));
        }
        return finish_with(with_job(std::move(error)));
    }

    Error with_job(Error error) const {
        if (!error.job_id) {
            error.job_id = job_id_;
        }
        if (const Job* latest = latest_job(); latest != nullptr && !error.job) {
            error.job = std::make_shared<const Job>(*latest);
        }
        return error;
    }

    WaitStep finish_with(Error error) {
        seen_ = std::move(error);
        return finish();
    }

    /// The job as last seen, while the wait goes on or after it succeeded.
    const Job* latest_job() const noexcept { return std::get_if<Job>(&seen_); }

    /// The job as last seen, also once a failure ended the wait (the Error carries it).
    const Job* job_seen() const noexcept {
        if (const auto* failure = std::get_if<Error>(&seen_)) {
            return failure->job.get();
        }
        return latest_job();
    }

    static WaitStep finish() { return {.action = WaitStep::Action::finish}; }

    PollPolicy policy_;
    Clock::time_point deadline_;
    std::string job_id_;
    /// Nothing yet, the job as last seen, or the Error that ended the wait: one slot for the two, since
    /// a waiting job holds this for minutes and a failure replaces the job (keeping a copy of it).
    std::variant<std::monostate, Job, Error> seen_{};
    unsigned polls_ = 0;
    bool last_poll_ = false;
};

}  // namespace perplexity::detail
