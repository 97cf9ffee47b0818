/// @file
/// Jobs, their status, and pages of job summaries: what create, get, list, wait and run return.
#pragma once

#include <perplexity/chat.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace perplexity {

/// Where a job is in its life. COMPLETED and FAILED are final. `unknown` stands for a status this
/// library does not know yet; the status text as sent is kept in `JobSummary::status_text`.
enum class JobStatus { created, in_progress, completed, failed, unknown };

/// The status as the API spells it ("IN_PROGRESS"); "UNKNOWN" for `unknown`.
constexpr std::string_view to_string(JobStatus status) noexcept {
    switch (status) {
        case JobStatus::created:
            return "CREATED";
        case JobStatus::in_progress:
            return "IN_PROGRESS";
        case JobStatus::completed:
            return "COMPLETED";
        case JobStatus::failed:
            return "FAILED";
        case JobStatus::unknown:
            break;
    }
    return "UNKNOWN";
}

/// Parses the API's spelling; anything unrecognised is `unknown`.
constexpr JobStatus job_status_from_string(std::string_view text) noexcept {
    for (JobStatus status :
         {JobStatus::created, JobStatus::in_progress, JobStatus::completed, JobStatus::failed}) {
        if (to_string(status) == text) {
            return status;
        }
    }
    return JobStatus::unknown;
}

/// True for COMPLETED and FAILED: the job will not change any more.
constexpr bool is_final(JobStatus status) noexcept {
    return status == JobStatus::completed || status == JobStatus::failed;
}

/// Whether `seen` comes before `known` in a job's life (CREATED, then IN_PROGRESS, then a final
/// status). A poll that answers with such a status is a stale read, e.g. from a lagging replica; an
/// unknown status is never taken for one.
constexpr bool is_earlier(JobStatus seen, JobStatus known) noexcept {
    constexpr auto stage = [](JobStatus status) {
        switch (status) {
            case JobStatus::created:
                return 0;
            case JobStatus::in_progress:
                return 1;
            case JobStatus::completed:
            case JobStatus::failed:
                return 2;
            case JobStatus::unknown:
                break;
        }
        return -1;
    };
    return stage(seen) >= 0 && stage(known) >= 0 && stage(seen) < stage(known);
}

/// A job as the list operation returns it. Plain data, owning all of its members.
struct JobSummary {
    /// The id the API gave the job; what `Client::get` and `Client::wait` take.
    std::string id{};
    /// The model the job runs, as the API reports it.
    std::string model{};
    /// The status, parsed; `unknown` for a status this release does not know (see `status_text`).
    JobStatus status = JobStatus::unknown;
    /// The status exactly as the API sent it, e.g. "IN_PROGRESS" or a status added after this release.
    std::string status_text{};
    /// When the job was created, in Unix seconds.
    std::int64_t created_at = 0;
    /// When it started running (Unix seconds), once it has.
    std::optional<std::int64_t> started_at{};
    /// When it completed (Unix seconds), if it has.
    std::optional<std::int64_t> completed_at{};
    /// When it failed (Unix seconds), if it has.
    std::optional<std::int64_t> failed_at{};

    /// True when `status` is COMPLETED or FAILED.
    bool is_final() const noexcept { return perplexity::is_final(status); }

    /// Member-wise equality.
    friend bool operator==(const JobSummary&, const JobSummary&) = default;
};

/// A job as create and get return it: a summary plus its outcome. Copying a Job is cheap: the answer
/// is shared, not copied.
struct Job : JobSummary {
    /// Why a FAILED job failed, as the API says it.
    std::optional<std::string> error_message{};
    /// The answer of a COMPLETED job, null before. `wait` and `run` only succeed with it set; a Job
    /// from `get` or `parse_job` that the API reports as COMPLETED without a `response` member has it
    /// null, so check it there. Shared and immutable: an
    /// answer never changes, and holding it by pointer keeps a Job small and cheap to copy, which
    /// matters in the coroutine frames of thousands of waiting jobs (a ChatCompletion is about 500 bytes
    /// before its strings). The answer lives as long as any copy of the pointer, independently of the
    /// Job and the Client. To edit one, copy it: `ChatCompletion edited = *job.response;`.
    std::shared_ptr<const ChatCompletion> response{};

    /// Equal when the summaries, the error messages and the answers (by value) are.
    friend bool operator==(const Job& a, const Job& b) {
        const bool same_response =
            a.response == b.response || (a.response && b.response && *a.response == *b.response);
        return static_cast<const JobSummary&>(a) == static_cast<const JobSummary&>(b) &&
               a.error_message == b.error_message && same_response;
    }
};

/// One page of the job list, newest first. Pass `next_token` back to `Client::list` for the next page.
struct JobPage {
    /// The jobs of this page, newest first.
    std::vector<JobSummary> jobs{};
    /// The token of the next page; nullopt on the last page (an empty token from the API reads as none).
    std::optional<std::string> next_token{};

    /// Member-wise equality.
    friend bool operator==(const JobPage&, const JobPage&) = default;
};

}  // namespace perplexity
