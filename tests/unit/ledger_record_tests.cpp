// What a run records in its ledger and what resume does with each entry, as tables: pure functions of a
// wait machine's steps and outcome, and of an entry and the time (detail/ledger_record.hpp).
#include <doctest/doctest.h>

#include <perplexity/detail/ledger_record.hpp>

#include <chrono>
#include <memory>

namespace px = perplexity;
using namespace std::chrono_literals;
using px::detail::AgentResponses;
using px::detail::ResumeAction;
using px::detail::SonarJobs;

namespace {

const auto now = std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 50));

px::Job job(px::JobStatus status, const char* text) {
    px::Job job;
    job.id = "job-1";
    job.status = status;
    job.status_text = text;
    return job;
}

px::LedgerEntry entry(px::LedgerApi api, px::EntryState state, std::string job_id,
                      std::chrono::system_clock::duration age) {
    px::LedgerEntry entry;
    entry.id = 7;
    entry.api = api;
    entry.state = state;
    entry.job_id = std::move(job_id);
    entry.idempotency_key = api == px::LedgerApi::sonar ? "key" : "";
    entry.created_at = now - age;
    return entry;
}

px::Error error(px::ErrorKind kind, std::optional<std::string> job_id, bool may_exist = false,
                int status = 0) {
    return px::Error{.kind = kind,
                     .message = "why",
                     .http_status = status,
                     .job_id = std::move(job_id),
                     .job_may_exist = may_exist};
}

}  // namespace

TEST_SUITE("ledger records") {
    TEST_CASE(
        "progress: the create's answer is the durable id, a new status a non-durable note, else nothing") {
        const px::Job created = job(px::JobStatus::created, "CREATED");
        px::detail::WaitStep step{.action = px::detail::WaitStep::Action::poll, .job = &created};
        step.created = step.status_changed = true;
        auto update = px::detail::progress_update<SonarJobs>(step, now);
        REQUIRE(update);
        CHECK(update->state == px::EntryState::running);
        CHECK(update->job_id == "job-1");
        CHECK(update->status == "CREATED");
        CHECK(update->durable);
        CHECK(update->at == now);

        step.created = false;
        update = px::detail::progress_update<SonarJobs>(step, now);
        REQUIRE(update);
        CHECK_FALSE(update->state);
        CHECK_FALSE(update->job_id);
        CHECK_FALSE(update->durable);

        step.status_changed = false;
        CHECK_FALSE(px::detail::progress_update<SonarJobs>(step, now));
        step.job = nullptr;
        step.status_changed = true;
        CHECK_FALSE(px::detail::progress_update<SonarJobs>(step, now));
    }

    TEST_CASE("outcome: a result completes the entry with its JSON") {
        px::Job done = job(px::JobStatus::completed, "COMPLETED");
        done.response = std::make_shared<const px::ChatCompletion>();
        const auto update = px::detail::final_update<SonarJobs>(&done, nullptr, now);
        CHECK(update.state == px::EntryState::completed);
        CHECK(update.status == "COMPLETED");
        CHECK(update.job_id == "job-1");
        REQUIRE(update.result);
        CHECK(px::parse_job(*update.result)->id == "job-1");
        CHECK(update.durable);
        CHECK_FALSE(update.error);
    }

    TEST_CASE("outcome: which Errors end an entry, and which leave it for resume") {
        struct Row {
            px::Error error;
            std::optional<px::EntryState> state;
        };
        const Row rows[] = {
            {error(px::ErrorKind::job_failed, "job-1"), px::EntryState::failed},
            {error(px::ErrorKind::response_cancelled, "job-1"), px::EntryState::failed},
            {error(px::ErrorKind::invalid_argument, std::nullopt), px::EntryState::failed},
            {error(px::ErrorKind::http_status, "job-1", false, 404), px::EntryState::failed},
            {error(px::ErrorKind::http_status, std::nullopt, false, 400), px::EntryState::failed},
            {error(px::ErrorKind::http_status, std::nullopt, false, 422), px::EntryState::failed},
            {error(px::ErrorKind::http_status, "job-1", false, 401), px::EntryState::running},
            {error(px::ErrorKind::http_status, "job-1", false, 503), px::EntryState::running},
            {error(px::ErrorKind::wait_deadline, "job-1"), px::EntryState::running},
            {error(px::ErrorKind::cancelled, "job-1"), px::EntryState::running},
            {error(px::ErrorKind::transport, "job-1"), px::EntryState::running},
            {error(px::ErrorKind::decode, "job-1"), px::EntryState::running},
            // A create that failed: pending while a job may exist (state unchanged), failed when none can.
            {error(px::ErrorKind::transport, std::nullopt, true), std::nullopt},
            {error(px::ErrorKind::timeout, std::nullopt, true), std::nullopt},
            {error(px::ErrorKind::http_status, std::nullopt, true, 500), std::nullopt},
            {error(px::ErrorKind::transport, std::nullopt, false), px::EntryState::failed},
            {error(px::ErrorKind::rate_limited, std::nullopt, false), px::EntryState::failed},
            {error(px::ErrorKind::cancelled, std::nullopt, false), px::EntryState::failed},
        };
        for (const Row& row : rows) {
            CAPTURE(row.error);
            const auto update = px::detail::final_update<SonarJobs>(nullptr, &row.error, now);
            CHECK(update.state == row.state);
            CHECK(update.error == px::to_string(row.error));
            CHECK(update.job_id == row.error.job_id);
            CHECK(update.durable);
        }
    }

    TEST_CASE("outcome: a failed job's Error keeps the job it carries") {
        px::Error failed = error(px::ErrorKind::job_failed, "job-1");
        failed.job = std::make_shared<const px::Job>(job(px::JobStatus::failed, "FAILED"));
        const auto update = px::detail::final_update<SonarJobs>(nullptr, &failed, now);
        CHECK(update.status == "FAILED");
        REQUIRE(update.result);
        CHECK(px::parse_job(*update.result)->status == px::JobStatus::failed);

        px::Error cancelled = error(px::ErrorKind::response_cancelled, "resp-1");
        px::Response response;
        response.id = "resp-1";
        response.status = px::ResponseStatus::cancelled;
        response.status_text = "cancelled";
        cancelled.response = std::make_shared<const px::Response>(response);
        const auto agent = px::detail::final_update<AgentResponses>(nullptr, &cancelled, now);
        CHECK(agent.state == px::EntryState::failed);
        CHECK(agent.status == "cancelled");
        REQUIRE(agent.result);
        CHECK(px::parse_response(*agent.result)->id == "resp-1");
    }

    TEST_CASE("resume: each kind of entry, young and old") {
        const px::ResumeOptions defaults;
        px::ResumeOptions recreate;
        recreate.recreate_unfindable_responses = true;
        struct Row {
            px::LedgerEntry entry;
            const px::ResumeOptions* options;
            ResumeAction action;
        };
        using px::EntryState;
        using px::LedgerApi;
        const Row rows[] = {
            {entry(LedgerApi::sonar, EntryState::running, "job-1", 1h), &defaults, ResumeAction::wait},
            {entry(LedgerApi::sonar, EntryState::running, "job-1", 6 * 24h), &defaults, ResumeAction::wait},
            {entry(LedgerApi::sonar, EntryState::running, "job-1", 8 * 24h), &defaults,
             ResumeAction::report_stale},
            {entry(LedgerApi::sonar, EntryState::pending, "", 1h), &defaults, ResumeAction::create_again},
            {entry(LedgerApi::sonar, EntryState::pending, "", 23h), &defaults, ResumeAction::create_again},
            {entry(LedgerApi::sonar, EntryState::pending, "", 25h), &defaults, ResumeAction::report_stale},
            {entry(LedgerApi::agent, EntryState::running, "resp-1", 1h), &defaults, ResumeAction::wait},
            {entry(LedgerApi::agent, EntryState::pending, "", 1h), &defaults,
             ResumeAction::report_unfindable},
            {entry(LedgerApi::agent, EntryState::pending, "", 1h), &recreate, ResumeAction::create_again},
            {entry(LedgerApi::sonar, EntryState::completed, "job-1", 1h), &defaults, ResumeAction::skip},
            {entry(LedgerApi::sonar, EntryState::failed, "", 1h), &defaults, ResumeAction::skip},
            {entry(LedgerApi::agent, EntryState::dropped, "resp-1", 1h), &defaults, ResumeAction::skip},
        };
        for (const Row& row : rows) {
            CAPTURE(px::to_string(row.entry.api));
            CAPTURE(px::to_string(row.entry.state));
            CAPTURE(row.entry.job_id);
            CHECK(px::detail::plan_resume(row.entry, now, *row.options) == row.action);
        }
        // A Sonar entry without a key (a hand-made one) is never created again blindly.
        px::LedgerEntry keyless = entry(LedgerApi::sonar, EntryState::pending, "", 1h);
        keyless.idempotency_key.clear();
        CHECK(px::detail::plan_resume(keyless, now, defaults) == ResumeAction::report_unfindable);
    }

    TEST_CASE("states and APIs read back from their names, and nothing else does") {
        for (const auto state : {px::EntryState::pending, px::EntryState::running, px::EntryState::completed,
                                 px::EntryState::failed, px::EntryState::dropped}) {
            CHECK(px::entry_state_from_string(px::to_string(state)) == state);
        }
        CHECK_FALSE(px::entry_state_from_string("RUNNING"));
        CHECK_FALSE(px::entry_state_from_string(""));
        CHECK(px::ledger_api_from_string("sonar") == px::LedgerApi::sonar);
        CHECK(px::ledger_api_from_string("agent") == px::LedgerApi::agent);
        CHECK_FALSE(px::ledger_api_from_string("Agent"));
    }
}
