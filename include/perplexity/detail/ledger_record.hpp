// What a run records in its ledger, and what a resume does with each unfinished entry: pure functions of
// the wait machine's steps and outcome, and of an entry and the time. The drivers (engine.hpp) only
// hand what these return to the Ledger.
#pragma once

#include <perplexity/detail/wait_machine.hpp>
#include <perplexity/error.hpp>
#include <perplexity/json.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/resume.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace perplexity::detail {

/// What a step of a run shows that the ledger should keep: the job id as soon as the create is answered
/// (durable: for the Agent API it is the only way to find the run again), and each new status (not
/// durable: a crash only costs one more poll on resume). Nothing for other steps.
template <class Vocabulary>
std::optional<LedgerUpdate> progress_update(const BasicWaitStep<typename Vocabulary::Item>& step,
                                            std::chrono::system_clock::time_point now) {
    if (step.job == nullptr || !step.status_changed) {
        return std::nullopt;
    }
    LedgerUpdate update{.status = Vocabulary::status_text(*step.job), .at = now};
    if (step.created) {
        update.state = EntryState::running;
        update.job_id = step.job->id;
    } else {
        update.durable = false;
    }
    return update;
}

/// Whether an Error that ended a wait (or a run's create) leaves the job able to give an answer later,
/// so that its entry stays unfinished for `Client::resume`.
inline bool leaves_job_unfinished(const Error& error) {
    switch (error.kind) {
        case ErrorKind::job_failed:
        case ErrorKind::response_cancelled:
        case ErrorKind::invalid_argument:
            return false;
        case ErrorKind::http_status:
            // 404: the API does not know the job (expired, or never made). 400 and 422: it refused the
            // request. Any other status (401, 403, 5xx after retries) is about the call, not the job.
            if (error.http_status == 404 || error.http_status == 400 || error.http_status == 422) {
                return !error.job_id && error.job_may_exist;
            }
            return error.job_id.has_value() || error.job_may_exist;
        default:
            // A create that failed with no job possible made nothing to wait for.
            return error.job_id.has_value() || error.job_may_exist;
    }
}

/// The entry's last record for a run (or resume) that finished: the result (the job or response as
/// JSON), or the Error, which fails the entry unless the job may still answer.
template <class Vocabulary>
LedgerUpdate final_update(const typename Vocabulary::Item* item, const Error* failure,
                          std::chrono::system_clock::time_point now) {
    LedgerUpdate update{.at = now};
    if (failure == nullptr && item != nullptr) {
        update.state = EntryState::completed;
        update.job_id = item->id;
        update.status = Vocabulary::status_text(*item);
        update.result = to_json_string(*item);
        return update;
    }
    if (failure == nullptr) {
        return update;
    }
    // The whole line (kind, message, the API's own words), for whoever reads the ledger later.
    update.error = to_string(*failure);
    if (failure->job_id) {
        update.job_id = *failure->job_id;
    }
    if (const auto* attached = Vocabulary::attached(*failure)) {
        update.status = Vocabulary::status_text(*attached);
        update.result = to_json_string(*attached);
    }
    if (!leaves_job_unfinished(*failure)) {
        update.state = EntryState::failed;
    } else if (failure->job_id) {
        update.state = EntryState::running;
    }
    return update;
}

/// What `Client::resume` does with one unfinished entry.
enum class ResumeAction {
    /// Wait on the recorded job id.
    wait,
    /// Create the job again: with the entry's idempotency key (Sonar), or afresh (an Agent API entry,
    /// only when the caller chose to).
    create_again,
    /// Too old to carry on safely: report it in ResumeReport::stale.
    report_stale,
    /// A create that may have made a job nobody can find (an Agent API entry, or a Sonar one without a
    /// key): report it.
    report_unfindable,
    /// Finished already (completed, failed or dropped): nothing to do.
    skip,
};

/// The action for `entry` at `now`, before ResumeOptions::keep is asked.
inline ResumeAction plan_resume(const LedgerEntry& entry, std::chrono::system_clock::time_point now,
                                const ResumeOptions& options) {
    if (!is_unfinished(entry.state)) {
        return ResumeAction::skip;
    }
    const auto age = now - entry.created_at;
    if (!entry.job_id.empty()) {
        return age > options.wait_within ? ResumeAction::report_stale : ResumeAction::wait;
    }
    if (entry.api == LedgerApi::agent) {
        return options.recreate_unfindable_responses ? ResumeAction::create_again
                                                     : ResumeAction::report_unfindable;
    }
    if (entry.idempotency_key.empty()) {
        // Only a hand-made entry has no key: creating it again might make a second job.
        return ResumeAction::report_unfindable;
    }
    if (age > options.recreate_within) {
        return ResumeAction::report_stale;
    }
    return ResumeAction::create_again;
}

}  // namespace perplexity::detail
