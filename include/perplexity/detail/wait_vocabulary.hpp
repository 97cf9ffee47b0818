// What tells the two async APIs apart when a job is waited for: the job's type, which statuses end a
// wait and how, and the words of its Errors. The wait machine (wait_machine.hpp) and the drivers
// (engine.hpp) are written once against this small interface; a Sonar job and an Agent API background
// response are the same kind of thing in other words.
#pragma once

#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/error.hpp>
#include <perplexity/job.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/response.hpp>
#include <perplexity/wait.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity::detail {

/// What a sight of the job means for a wait.
enum class Verdict {
    /// Still running (or a status this release does not know): poll again.
    running,
    /// Ended the way the caller gets as the result.
    result,
    /// Ended in a way that is an Error (see the vocabulary's `ending`).
    error,
};

/// What both APIs' jobs share: a status kept with its text as sent, which only moves forward.
template <class Item>
struct ForwardStatus {
    /// An answer whose status comes before one already seen: a stale read.
    static bool is_stale(const Item& answer, const Item& latest) noexcept {
        return is_earlier(answer.status, latest.status);
    }

    static bool status_differs(const Item& a, const Item& b) noexcept {
        return a.status != b.status || a.status_text != b.status_text;
    }

    static const std::string& status_text(const Item& item) noexcept { return item.status_text; }
};

/// The Sonar async API's jobs: CREATED and IN_PROGRESS run; COMPLETED with its answer is the result;
/// FAILED, or COMPLETED without an answer, is an Error. No cancel exists on the server.
struct SonarJobs : ForwardStatus<Job> {
    using Item = Job;
    using Options = WaitOptions;
    static constexpr std::string_view noun = "job";
    static constexpr LedgerApi ledger_api = LedgerApi::sonar;
    static constexpr bool can_cancel_on_server = false;

    static bool cancels_on_abandon(const WaitOptions&) noexcept { return false; }

    static Verdict verdict(const Job& job) noexcept {
        if (job.status == JobStatus::completed) {
            // A success without its answer would only fail later, in the caller's hands.
            return job.response ? Verdict::result : Verdict::error;
        }
        return job.status == JobStatus::failed ? Verdict::error : Verdict::running;
    }

    static Error ending(const Job& job) {
        return job.status == JobStatus::failed ? job_failed(job) : completed_without_answer(job);
    }

    static void attach(Error& error, const Job& job) {
        if (!error.job) {
            error.job = std::make_shared<const Job>(job);
        }
    }

    static const Job* attached(const Error& error) noexcept { return error.job.get(); }

    static Error answered_about_another(const std::string& asked, const std::string& answered) {
        return answered_about_another_job(asked, answered);
    }

    /// A failed create of `run`: the key it was sent with picks the job up if one was made.
    static void note_failed_create(Error& error, bool may_have_acted, const std::string& idempotency_key) {
        note_create_attempts(error, idempotency_key, may_have_acted);
        note_run_create_outcome(error);
    }
};

/// The Agent API's background responses: queued and in_progress run, and so does a status this release
/// does not know (the contract says to tolerate new ones); completed, requires_action (the caller's
/// turn) and incomplete are the result; failed and cancelled are Errors. They can be cancelled on the
/// server.
struct AgentResponses : ForwardStatus<Response> {
    using Item = Response;
    using Options = ResponseWaitOptions;
    static constexpr std::string_view noun = "response";
    static constexpr LedgerApi ledger_api = LedgerApi::agent;
    static constexpr bool can_cancel_on_server = true;

    static bool cancels_on_abandon(const ResponseWaitOptions& options) noexcept {
        return options.cancel_on_abandon;
    }

    static Verdict verdict(const Response& response) noexcept {
        switch (response.status) {
            case ResponseStatus::completed:
            case ResponseStatus::requires_action:
            case ResponseStatus::incomplete:
                return Verdict::result;
            case ResponseStatus::failed:
            case ResponseStatus::cancelled:
                return Verdict::error;
            case ResponseStatus::queued:
            case ResponseStatus::in_progress:
            case ResponseStatus::unknown:
                break;
        }
        return Verdict::running;
    }

    static Error ending(const Response& response) {
        return response.status == ResponseStatus::cancelled ? response_cancelled_on_server(response)
                                                            : response_failed(response);
    }

    static void attach(Error& error, const Response& response) {
        if (!error.response) {
            error.response = std::make_shared<const Response>(response);
        }
    }

    static const Response* attached(const Error& error) noexcept { return error.response.get(); }

    static Error answered_about_another(const std::string& asked, const std::string& answered) {
        return answered_about_another_response(asked, answered);
    }

    /// A failed create of `run_response`: nothing can pick up a response that may have been made.
    static void note_failed_create(Error& error, bool may_have_acted, const std::string&) {
        note_response_create_attempts(error, may_have_acted);
    }
};

}  // namespace perplexity::detail
