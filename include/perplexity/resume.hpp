/// @file
/// ResumeOptions and ResumeReport, the settings and the account of `Client::resume`, which carries on
/// the unfinished entries of a ledger after a crash or a restart.
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/response.hpp>
#include <perplexity/wait.hpp>

#include <chrono>
#include <functional>
#include <vector>

namespace perplexity {

/// What `Client::resume` does with each unfinished entry.
struct ResumeOptions {
    /// A pending Sonar entry (intent recorded, no job id) is created again with its idempotency key only
    /// when it is younger than this: the API must still remember the key for the create to find the job
    /// the key may already have made, and for how long it does is not documented. An older one is
    /// reported in ResumeReport::stale and left pending, never created again by resume.
    std::chrono::seconds recreate_within = std::chrono::hours(24);
    /// A running entry (job id known) is waited on only when it is younger than this: the API keeps jobs
    /// a limited time (the contract says so; a third party says 7 days). An older one is reported in
    /// ResumeReport::stale and left running.
    std::chrono::seconds wait_within = std::chrono::hours(24 * 7);
    /// A pending Agent API entry has no idempotency key and the API has no list: a response may exist
    /// (and be billed) that nobody can find. By default it is reported in ResumeReport::unfindable and
    /// left pending. Set this to create each such entry again anyway, at the risk of paying twice.
    bool recreate_unfindable_responses = false;
    /// Sees each unfinished entry before it is carried on; returning false drops it: it is recorded as
    /// dropped and never carried on again, and a running Agent API response is cancelled on the server
    /// (the Sonar API cannot cancel a job: it runs to its end and is billed). Empty: keep every entry.
    std::function<bool(const LedgerEntry&)> keep{};
    /// The options of each resumed Sonar wait (on_progress, poll); `idempotency_key` and `label` are
    /// the entry's own and are ignored here.
    WaitOptions wait{};
    /// The options of each resumed Agent API wait; `label` is ignored here.
    ResponseWaitOptions wait_response{};
    /// Sees the outcome of each resumed Sonar entry as it ends, with the entry as it was when resumed.
    /// Runs on the Client's executor and must not throw.
    std::function<void(const LedgerEntry&, const expected<Job, Error>&)> on_job{};
    /// Sees the outcome of each resumed Agent API entry as it ends.
    std::function<void(const LedgerEntry&, const expected<Response, Error>&)> on_response{};
};

/// What `Client::resume` found and did, each entry as it was when found.
struct ResumeReport {
    /// Carried on: waited on again, or created again with the same key. Their outcomes went to
    /// on_job / on_response and into the ledger.
    std::vector<LedgerEntry> resumed{};
    /// Too old to carry on safely (ResumeOptions::recreate_within, wait_within); left as they were.
    std::vector<LedgerEntry> stale{};
    /// Agent API entries whose create may have made a response nobody can find (no id was recorded, and
    /// the API has neither idempotency keys nor a list), and Sonar entries without an idempotency key
    /// (which only a hand-made entry lacks); left pending.
    std::vector<LedgerEntry> unfindable{};
    /// Dropped by ResumeOptions::keep.
    std::vector<LedgerEntry> dropped{};
};

}  // namespace perplexity
