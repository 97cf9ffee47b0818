// The wait machine: every decision of `wait` (poll, sleep, poll again until the job ends or the deadline
// passes) and of `run`'s settlement of its create, and nothing else. Like the request machine it takes
// what happened (an answer, a failure, the time now, a random number) and returns the next action and
// what to report, as data; it reads no clock and touches no socket. One machine serves both APIs: what
// differs between a Sonar job and an Agent API response is its Vocabulary (wait_vocabulary.hpp).
#pragma once

#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/detail/wait_vocabulary.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/poll.hpp>
#include <perplexity/response.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace perplexity::detail {

/// What the driver of a wait does next, and what it reports first.
template <class Item>
struct BasicWaitStep {
    enum class Action {
        /// Fetch the job (`BasicWaitMachine::job_id`) and hand the answer to `polled`.
        poll,
        /// Sleep `delay` (which may be zero), then poll number `poll`.
        sleep,
        /// The wait is abandoned while the job may still run, and the caller asked for it to be
        /// cancelled then: send the cancel for `job_id` (even though the operation was cancelled) and hand
        /// its outcome to `cancel_answered`.
        cancel_on_server,
        /// Done: `BasicWaitMachine::result` is the outcome.
        finish,
    };
    Action action = Action::finish;
    std::chrono::milliseconds delay{};
    unsigned poll = 0;
    /// The job to report, valid until the next call to the machine: the create's answer (`created`),
    /// or a poll's answer (`polled`; a stale one too), which may show a new status (`status_changed`).
    const Item* job = nullptr;
    bool created = false;
    bool polled = false;
    bool status_changed = false;
};

/// Polls one job to its end within a deadline: an ending the Vocabulary calls the result (a COMPLETED job
/// with its answer) is the result; any other ending, a failed poll, the deadline or a cancellation is an
/// Error that carries the job id and the job as last seen. For `run`, the machine first settles the
/// create: its answer is the first sight of the job.
template <class Vocabulary>
class BasicWaitMachine {
  public:
    using Item = typename Vocabulary::Item;
    using Step = BasicWaitStep<Item>;

    /// `cancel_on_abandon`: when the caller cancels or the deadline passes while the job may still run,
    /// ask the driver to cancel it on the server first (only where the API can).
    BasicWaitMachine(const PollPolicy& policy, Clock::time_point deadline, std::string job_id = {},
                     bool cancel_on_abandon = false)
        : policy_(policy),
          deadline_(deadline),
          job_id_(std::move(job_id)),
          cancel_on_abandon_(Vocabulary::can_cancel_on_server && cancel_on_abandon) {}

    /// `wait`: nothing is known yet, so the first poll is made at once.
    Step start() { return {.action = Step::Action::poll}; }

    /// `run`: the create came to `created`; `job_may_exist` is what its attempts showed, and
    /// `idempotency_key` the key it carried, if the API has them. A failure ends the run, saying what
    /// became of the job and how to pick it up where that is possible.
    Step created(expected<Item, Error>& created, bool job_may_exist, const std::string& idempotency_key,
                 Clock::time_point now, double random_unit) {
        if (!created) {
            Error& error = created.error();
            Vocabulary::note_failed_create(error, job_may_exist, idempotency_key);
            return finish_with(std::move(error));
        }
        job_id_ = created->id;
        Step step = see(std::move(*created), now, random_unit);
        step.created = true;
        step.status_changed = true;
        return step;
    }

    /// A poll came to `answer` at `now`; `gave_up_for_deadline` says its request stopped retrying
    /// because the deadline left no room. The machine takes the answer unless it is stale.
    Step polled(expected<Item, Error>& answer, bool gave_up_for_deadline, Clock::time_point now,
                double random_unit) {
        if (!answer) {
            return poll_failed(std::move(answer).error(), gave_up_for_deadline, now);
        }
        const Item* latest = latest_job();
        if (latest != nullptr && Vocabulary::is_stale(*answer, *latest)) {
            // Not news: a job never goes back, so keep what was already seen and poll again.
            Step step = decide(now, random_unit);
            step.job = &*answer;
            step.polled = true;
            return step;
        }
        const bool changed = latest == nullptr || Vocabulary::status_differs(*latest, *answer);
        Step step = see(std::move(*answer), now, random_unit);
        step.polled = true;
        step.status_changed = changed;
        return step;
    }

    /// A sleep ended: poll.
    Step woke() { return {.action = Step::Action::poll}; }

    /// The caller cancelled the wait (`ec` is Asio's reason); the Error keeps the job as last seen.
    Step interrupted(const boost::system::error_code& ec) {
        if (cancel_requested_) {
            // Interrupting the cancel itself: it is the outcome the Error reports.
            return cancel_answered(unexpected(cancelled(ec, "while cancelling it on the server")));
        }
        if (job_id_.empty()) {
            return finish_with(cancelled(ec, "while creating the " + std::string(Vocabulary::noun)));
        }
        return abandon(with_job(cancelled(ec, "while waiting for the " + std::string(Vocabulary::noun))));
    }

    /// The cancel that `cancel_on_server` asked for came to `outcome`: the wait ends with its Error,
    /// which says what became of the run.
    Step cancel_answered(const expected<CancelAcknowledgement, Error>& outcome) {
        if (Error* failure = failure_seen()) {
            note_cancel_outcome(*failure, outcome);
        }
        return finish();
    }

    /// The run's ledger entry went to another process (ErrorKind::taken_over in `error`): the wait ends
    /// with it, whatever was seen, even an answer, which the other process reports. The job is not
    /// cancelled on the server, since the other process waits on it.
    Step taken_over(Error error) { return finish_with(with_job(std::move(error))); }

    /// The poll due now was held off, not sent: whether the run's ledger entry is still this process's
    /// cannot be told for now (a fleet replica whose lease ran out unrenewed), and another process may
    /// be waiting on the job. The machine asks again after a poll interval. At the deadline the wait
    /// ends without cancelling the job, since its holder may be another process.
    Step hold_unsure(Clock::time_point now, double random_unit) {
        const PlannedSleep sleep = fit_to_deadline(poll_delay(policy_, std::max(polls_, 1U), random_unit),
                                                   time_left(deadline_, now), std::chrono::milliseconds(0));
        if (sleep.deadline_reached) {
            Error late = deadline_passed(latest_job());
            late.message +=
                "; its last polls were held off, as this process could not confirm it still "
                "holds the job's ledger entry";
            return finish_with(with_job(std::move(late)));
        }
        return {.action = Step::Action::sleep, .delay = sleep.delay, .poll = polls_};
    }

    /// The outcome, once the machine said finish.
    expected<Item, Error> result() && {
        if (Error* failure = failure_seen()) {
            return unexpected(std::move(*failure));
        }
        return std::move(std::get<Item>(seen_));
    }

    /// The job as last seen while the wait goes on, or its result once it succeeded; null otherwise.
    const Item* job() const noexcept { return latest_job(); }
    /// The Error that ended the wait, once one did; null otherwise.
    const Error* error() const noexcept { return failure_seen(); }

    /// The job's id: given to `wait`, or from `run`'s create.
    const std::string& job_id() const noexcept { return job_id_; }
    /// When the wait gives up.
    Clock::time_point deadline() const noexcept { return deadline_; }

  private:
    /// Takes `job` as the latest sight of the job and decides what follows; the step reports it.
    Step see(Item&& job, Clock::time_point now, double random_unit) {
        seen_ = std::move(job);
        Step step = decide(now, random_unit);
        step.job = job_seen();
        return step;
    }

    /// What to do after seeing the job: finish on a final status, else sleep until the next poll, the
    /// last one fitted in before the deadline.
    Step decide(Clock::time_point now, double random_unit) {
        const Item& latest = std::get<Item>(seen_);
        switch (Vocabulary::verdict(latest)) {
            case Verdict::result:
                return finish();
            case Verdict::error:
                return finish_with(Vocabulary::ending(latest));
            case Verdict::running:
                break;
        }
        if (last_poll_) {
            return abandon(deadline_passed(&latest));
        }
        ++polls_;
        const PlannedSleep sleep = fit_to_deadline(poll_delay(policy_, polls_, random_unit),
                                                   time_left(deadline_, now), policy_.last_poll_margin);
        if (sleep.deadline_reached) {
            return abandon(deadline_passed(&latest));
        }
        last_poll_ = sleep.last_poll;
        return {.action = Step::Action::sleep, .delay = sleep.delay, .poll = polls_};
    }

    Step poll_failed(Error error, bool gave_up_for_deadline, Clock::time_point now) {
        if (error.kind == ErrorKind::cancelled) {
            return abandon(with_job(std::move(error)));
        }
        if (gave_up_for_deadline || time_left(deadline_, now) <= std::chrono::milliseconds(0)) {
            // A poll that would have been retried but for the deadline ends the wait by its deadline;
            // the poll's own failure is kept in the message.
            Error late = deadline_passed(latest_job());
            late.message += "; the last poll failed: " + to_string(error);
            return abandon(std::move(late));
        }
        return finish_with(with_job(std::move(error)));
    }

    Error deadline_passed(const Item* latest) const {
        Error error = wait_deadline_passed(
            policy_.deadline, Vocabulary::noun, job_id_,
            latest ? std::string_view(Vocabulary::status_text(*latest)) : std::string_view());
        if (latest != nullptr) {
            Vocabulary::attach(error, *latest);
        }
        return error;
    }

    Error with_job(Error error) const {
        if (!error.job_id) {
            error.job_id = job_id_;
        }
        if (const Item* latest = latest_job(); latest != nullptr) {
            Vocabulary::attach(error, *latest);
        }
        return error;
    }

    /// The wait ends with `error` while the job may still run: first cancel it on the server, if asked to.
    Step abandon(Error error) {
        seen_ = std::make_unique<Error>(std::move(error));
        if (!cancel_on_abandon_ || job_id_.empty()) {
            return finish();
        }
        cancel_requested_ = true;
        return {.action = Step::Action::cancel_on_server};
    }

    Step finish_with(Error error) {
        seen_ = std::make_unique<Error>(std::move(error));
        return finish();
    }

    /// The job as last seen, while the wait goes on or after it succeeded.
    const Item* latest_job() const noexcept { return std::get_if<Item>(&seen_); }

    /// The job as last seen, also once a failure ended the wait (the Error carries it).
    const Item* job_seen() const noexcept {
        if (const Error* failure = failure_seen()) {
            return Vocabulary::attached(*failure);
        }
        return latest_job();
    }

    /// The Error that ended the wait, once one did.
    Error* failure_seen() const noexcept {
        const auto* failure = std::get_if<std::unique_ptr<Error>>(&seen_);
        return failure != nullptr ? failure->get() : nullptr;
    }

    static Step finish() { return {.action = Step::Action::finish}; }

    PollPolicy policy_;
    Clock::time_point deadline_;
    std::string job_id_;
    /// Nothing yet, the job as last seen, or the Error that ended the wait: one slot for the two, since
    /// a waiting job holds this for minutes and a failure replaces the job (keeping a copy of it). The
    /// Error, larger than a Job, is on the heap: only a wait that failed pays for it.
    std::variant<std::monostate, Item, std::unique_ptr<Error>> seen_{};
    unsigned polls_ = 0;
    bool last_poll_ = false;
    bool cancel_on_abandon_ = false;
    bool cancel_requested_ = false;
};

/// The Sonar async API's wait.
using WaitMachine = BasicWaitMachine<SonarJobs>;
using WaitStep = WaitMachine::Step;
/// The Agent API's wait.
using ResponseWaitMachine = BasicWaitMachine<AgentResponses>;
using ResponseWaitStep = ResponseWaitMachine::Step;

}  // namespace perplexity::detail
