// The wait machine as tables: every status, stale answers, the last poll fitted before the deadline,
// failed polls, cancellation, and run's settlement of its create. No socket, no clock, no sleeping.
#include <perplexity/detail/pacer.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/detail/wait_machine.hpp>

#include <boost/asio/error.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

// A namespace of its own: the unit files are compiled as one unity translation unit.
namespace wait_machine_tests {

namespace px = perplexity;
namespace pd = perplexity::detail;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Action = pd::WaitStep::Action;

namespace {

const pd::Clock::time_point t0 = pd::Clock::time_point(100h);

px::PollPolicy steady_policy(milliseconds deadline = 60s) {
    px::PollPolicy policy;
    policy.backoff.initial = 1s;
    policy.backoff.growth = 2.0;
    policy.backoff.max = 4s;
    policy.backoff.jitter = 0;
    policy.deadline = deadline;
    policy.last_poll_margin = 500ms;
    return policy;
}

px::Job job(px::JobStatus status, std::string id = "job-1") {
    px::Job job;
    job.id = std::move(id);
    job.status = status;
    job.status_text = std::string(px::to_string(status));
    if (status == px::JobStatus::completed) {
        job.response = std::make_shared<const px::ChatCompletion>();
    }
    return job;
}

px::expected<px::Job, px::Error> answer(px::JobStatus status) {
    return job(status);
}

px::expected<px::Job, px::Error> failed_poll(px::ErrorKind kind, int http_status = 0) {
    return px::unexpected(
        px::Error{.kind = kind, .message = "poll failed", .http_status = http_status, .job_id = "job-1"});
}

}  // namespace

TEST_SUITE("wait machine") {
    TEST_CASE("a wait polls at once, then sleeps between polls until COMPLETED, reporting each poll") {
        const px::PollPolicy policy = steady_policy();
        pd::WaitMachine machine(policy, t0 + policy.deadline, "job-1");
        CHECK(machine.start().action == Action::poll);

        auto in_progress = answer(px::JobStatus::in_progress);
        auto step = machine.polled(in_progress, false, t0, 0.5);
        CHECK(step.action == Action::sleep);
        CHECK(step.delay == 1s);
        CHECK(step.poll == 1);
        CHECK(step.polled);
        CHECK(step.status_changed);
        REQUIRE(step.job != nullptr);
        CHECK(step.job->status == px::JobStatus::in_progress);
        CHECK(machine.woke().action == Action::poll);

        auto again = answer(px::JobStatus::in_progress);
        step = machine.polled(again, false, t0 + 1s, 0.5);
        CHECK(step.delay == 2s);
        CHECK(step.poll == 2);
        CHECK(step.polled);
        CHECK_FALSE(step.status_changed);

        auto done = answer(px::JobStatus::completed);
        step = machine.polled(done, false, t0 + 3s, 0.5);
        CHECK(step.action == Action::finish);
        CHECK(step.status_changed);
        auto result = std::move(machine).result();
        REQUIRE(result);
        CHECK(result->status == px::JobStatus::completed);
    }

    TEST_CASE("how each status seen ends the wait or keeps it going") {
        struct Row {
            px::JobStatus status;
            bool with_response;
            Action action;
            std::optional<px::ErrorKind> error;
        };
        const Row rows[] = {
            {px::JobStatus::created, false, Action::sleep, std::nullopt},
            {px::JobStatus::in_progress, false, Action::sleep, std::nullopt},
            {px::JobStatus::unknown, false, Action::sleep, std::nullopt},
            {px::JobStatus::completed, true, Action::finish, std::nullopt},
            {px::JobStatus::completed, false, Action::finish, px::ErrorKind::decode},
            {px::JobStatus::failed, false, Action::finish, px::ErrorKind::job_failed},
        };
        for (const Row& row : rows) {
            CAPTURE(px::to_string(row.status));
            CAPTURE(row.with_response);
            pd::WaitMachine machine(steady_policy(), t0 + 60s, "job-1");
            px::expected<px::Job, px::Error> seen = job(row.status);
            if (!row.with_response) {
                seen->response.reset();
            }
            seen->error_message = "the model gave up";
            const auto step = machine.polled(seen, false, t0, 0.5);
            CHECK(step.action == row.action);
            if (row.action != Action::finish) {
                continue;
            }
            auto result = std::move(machine).result();
            CHECK(result.has_value() == !row.error.has_value());
            if (row.error) {
                REQUIRE_FALSE(result);
                CHECK(result.error().kind == *row.error);
                CHECK(result.error().job_id == "job-1");
                REQUIRE(result.error().job != nullptr);
                CHECK(result.error().job->status == row.status);
                if (*row.error == px::ErrorKind::decode) {
                    CHECK(result.error().json_path == "$.response");
                } else {
                    CHECK(result.error().api_message == "the model gave up");
                }
            }
        }
    }

    TEST_CASE("a stale answer is reported as polled and otherwise ignored") {
        pd::WaitMachine machine(steady_policy(), t0 + 60s, "job-1");
        auto in_progress = answer(px::JobStatus::in_progress);
        machine.polled(in_progress, false, t0, 0.5);
        auto stale = answer(px::JobStatus::created);
        const auto step = machine.polled(stale, false, t0 + 1s, 0.5);
        CHECK(step.action == Action::sleep);
        CHECK(step.polled);
        CHECK_FALSE(step.status_changed);
        REQUIRE(step.job != nullptr);
        CHECK(step.job->status == px::JobStatus::created);
        machine.interrupted(boost::asio::error::operation_aborted);
        auto result = std::move(machine).result();
        REQUIRE_FALSE(result);
        REQUIRE(result.error().job != nullptr);
        CHECK(result.error().job->status == px::JobStatus::in_progress);
    }

    TEST_CASE("the same status with new text is a status change") {
        pd::WaitMachine machine(steady_policy(), t0 + 60s, "job-1");
        auto first = answer(px::JobStatus::unknown);
        first->status_text = "QUEUED";
        CHECK(machine.polled(first, false, t0, 0.5).status_changed);
        auto second = answer(px::JobStatus::unknown);
        second->status_text = "WARMING_UP";
        CHECK(machine.polled(second, false, t0 + 1s, 0.5).status_changed);
    }

    TEST_CASE("the last poll is fitted in before the deadline, then the deadline ends the wait") {
        const px::PollPolicy policy = steady_policy(3s);
        pd::WaitMachine machine(policy, t0 + 3s, "job-1");
        auto seen = answer(px::JobStatus::in_progress);
        auto step = machine.polled(seen, false, t0, 0.5);
        CHECK(step.delay == 1s);  // 1 s + margin < 3 s: as planned
        seen = answer(px::JobStatus::in_progress);
        step = machine.polled(seen, false, t0 + 1s, 0.5);
        CHECK(step.action == Action::sleep);
        CHECK(step.delay == 1500ms);  // 2 s wanted; cut to end 500 ms before the deadline
        seen = answer(px::JobStatus::in_progress);
        step = machine.polled(seen, false, t0 + 2500ms, 0.5);
        CHECK(step.action == Action::finish);
        auto result = std::move(machine).result();
        REQUIRE_FALSE(result);
        CHECK(result.error().kind == px::ErrorKind::wait_deadline);
        CHECK(result.error().job_id == "job-1");
        CHECK(result.error().message.find("3000 ms") != std::string::npos);
        CHECK(result.error().message.find("IN_PROGRESS") != std::string::npos);
    }

    TEST_CASE("the last poll still sees a job that finished in the meantime") {
        pd::WaitMachine machine(steady_policy(3s), t0 + 3s, "job-1");
        auto seen = answer(px::JobStatus::in_progress);
        machine.polled(seen, false, t0 + 2s, 0.5);  // 1 s wanted; cut to 500 ms, the last poll
        auto done = answer(px::JobStatus::completed);
        CHECK(machine.polled(done, false, t0 + 2500ms, 0.5).action == Action::finish);
        CHECK(std::move(machine).result().has_value());
    }

    TEST_CASE("a deadline already passed when a poll answers ends the wait at once") {
        pd::WaitMachine machine(steady_policy(3s), t0 + 3s, "job-1");
        auto seen = answer(px::JobStatus::in_progress);
        CHECK(machine.polled(seen, false, t0 + 4s, 0.5).action == Action::finish);
        CHECK(std::move(machine).result().error().kind == px::ErrorKind::wait_deadline);
    }

    TEST_CASE("a failed poll ends the wait: by the deadline when the deadline stopped its retries") {
        struct Row {
            px::ErrorKind kind;
            bool gave_up_for_deadline;
            pd::Clock::time_point at;
            px::ErrorKind result;
        };
        const Row rows[] = {
            {px::ErrorKind::http_status, false, t0 + 1s, px::ErrorKind::http_status},
            {px::ErrorKind::http_status, true, t0 + 1s, px::ErrorKind::wait_deadline},
            {px::ErrorKind::transport, false, t0 + 11s, px::ErrorKind::wait_deadline},
            {px::ErrorKind::cancelled, true, t0 + 11s, px::ErrorKind::cancelled},
            {px::ErrorKind::decode, false, t0 + 1s, px::ErrorKind::decode},
        };
        for (const Row& row : rows) {
            CAPTURE(px::to_string(row.kind));
            CAPTURE(row.gave_up_for_deadline);
            pd::WaitMachine machine(steady_policy(10s), t0 + 10s, "job-1");
            auto seen = answer(px::JobStatus::in_progress);
            machine.polled(seen, false, t0, 0.5);
            auto failed = failed_poll(row.kind, 503);
            CHECK(machine.polled(failed, row.gave_up_for_deadline, row.at, 0.5).action == Action::finish);
            auto result = std::move(machine).result();
            REQUIRE_FALSE(result);
            CHECK(result.error().kind == row.result);
            CHECK(result.error().job_id == "job-1");
            REQUIRE(result.error().job != nullptr);
            CHECK(result.error().job->status == px::JobStatus::in_progress);
            if (row.result == px::ErrorKind::wait_deadline) {
                CHECK(result.error().message.find("the last poll failed: " +
                                                  std::string(px::to_string(row.kind))) != std::string::npos);
            }
        }
    }

    TEST_CASE("a cancelled wait keeps the job id, and the job once seen") {
        pd::WaitMachine before(steady_policy(), t0 + 60s, "job-1");
        before.start();
        before.interrupted(boost::asio::error::operation_aborted);
        auto nothing_seen = std::move(before).result();
        CHECK(nothing_seen.error().kind == px::ErrorKind::cancelled);
        CHECK(nothing_seen.error().job_id == "job-1");
        CHECK(nothing_seen.error().job == nullptr);

        pd::WaitMachine after(steady_policy(), t0 + 60s, "job-1");
        auto seen = answer(px::JobStatus::in_progress);
        after.polled(seen, false, t0, 0.5);
        after.interrupted(boost::asio::error::operation_aborted);
        auto result = std::move(after).result();
        CHECK(result.error().kind == px::ErrorKind::cancelled);
        REQUIRE(result.error().job != nullptr);
    }

    TEST_CASE("run: the create's answer is the first sight of the job") {
        pd::WaitMachine machine(steady_policy(), t0 + 60s);
        px::expected<px::Job, px::Error> created = job(px::JobStatus::created, "job-9");
        const auto step = machine.created(created, true, "key-1", t0, 0.5);
        CHECK(step.action == Action::sleep);
        CHECK(step.poll == 1);
        CHECK(step.created);
        CHECK(step.status_changed);
        CHECK_FALSE(step.polled);
        CHECK(machine.job_id() == "job-9");
        machine.interrupted(boost::asio::error::operation_aborted);
        CHECK(std::move(machine).result().error().job_id == "job-9");
    }

    TEST_CASE("run: a failed create says whether a job may exist, from what its attempts showed") {
        struct Row {
            px::ErrorKind kind;
            bool may_have_acted;
            bool hint;
            bool no_job;
        };
        const Row rows[] = {
            {px::ErrorKind::transport, false, false, true},
            {px::ErrorKind::transport, true, true, false},
            {px::ErrorKind::timeout, true, true, false},
            {px::ErrorKind::timeout, false, false, true},
            {px::ErrorKind::cancelled, false, false, true},
            {px::ErrorKind::rate_limited, false, false, true},
            {px::ErrorKind::http_status, true, true, false},
            {px::ErrorKind::http_status, false, false, false},
        };
        for (const Row& row : rows) {
            CAPTURE(px::to_string(row.kind));
            CAPTURE(row.may_have_acted);
            pd::WaitMachine machine(steady_policy(), t0 + 60s);
            px::expected<px::Job, px::Error> created =
                px::unexpected(px::Error{.kind = row.kind, .message = "no"});
            CHECK(machine.created(created, row.may_have_acted, "key-7", t0, 0.5).action == Action::finish);
            const px::Error error = std::move(machine).result().error();
            CHECK(error.kind == row.kind);
            CHECK(error.job_may_exist == row.may_have_acted);
            CHECK(error.idempotency_key == "key-7");
            CHECK((error.message.find("idempotency_key = \"key-7\"") != std::string::npos) == row.hint);
            CHECK((error.message.find("no job was created") != std::string::npos) == row.no_job);
            CHECK_FALSE(error.job_id);
        }
    }

    // Regression: run's Error suggested picking the job up by its key although the create provably
    // never left the machine (a connection refused): the hint was chosen from the error's kind.
    TEST_CASE("run against a refused connection: the request and wait machines say no job exists") {
        px::RetryPolicy retry;
        retry.max_attempts = 2;
        pd::Pacer pacer;
        pd::RequestMachine request(retry, pacer, true, t0 + 60s);
        auto step = request.start(t0);
        pd::SendFailure refused{px::Error{.kind = px::ErrorKind::transport, .message = "connecting failed"},
                                false};
        step = request.failed(refused, t0, 0.5);
        REQUIRE(step.action == pd::RequestStep::Action::sleep);
        step = request.woke(step.until);
        step = request.failed(refused, step.until, 0.5);
        REQUIRE(step.action == pd::RequestStep::Action::finish);

        pd::WaitMachine wait(steady_policy(), t0 + 60s);
        px::expected<px::Job, px::Error> created = px::unexpected(request.error());
        wait.created(created, request.may_have_acted(), "key-3", t0 + 1s, 0.5);
        const px::Error error = std::move(wait).result().error();
        CHECK_FALSE(error.job_may_exist);
        CHECK(error.message.find("pick up") == std::string::npos);
        CHECK(error.message.find("no job was created") != std::string::npos);
    }

    TEST_CASE(
        "an entry taken over ends the wait with taken_over, even after an answer, and cancels nothing") {
        const px::PollPolicy policy = steady_policy();
        const auto taken = px::Error{.kind = px::ErrorKind::taken_over, .message = "taken over"};
        // While the job runs: the wait ends carrying the job as last seen and its id.
        pd::BasicWaitMachine<pd::AgentResponses> running(policy, t0 + policy.deadline, "resp-1", true);
        REQUIRE(running.start().action == pd::ResponseWaitStep::Action::poll);
        const auto stopped = running.taken_over(taken);
        CHECK(stopped.action == pd::ResponseWaitStep::Action::finish);  // no cancel on the server
        auto outcome = std::move(running).result();
        REQUIRE_FALSE(outcome.has_value());
        CHECK(outcome.error().kind == px::ErrorKind::taken_over);
        CHECK(outcome.error().job_id == std::optional<std::string>("resp-1"));

        // After the answer came (the outcome could not be recorded): the other replica reports it.
        pd::WaitMachine completed(policy, t0 + policy.deadline, "job-1");
        auto done = answer(px::JobStatus::completed);
        REQUIRE(completed.polled(done, false, t0, 0.5).action == Action::finish);
        CHECK(completed.taken_over(taken).action == Action::finish);
        auto result = std::move(completed).result();
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().kind == px::ErrorKind::taken_over);
        REQUIRE(result.error().job != nullptr);
        CHECK(result.error().job->status == px::JobStatus::completed);
    }

    TEST_CASE(
        "a poll held off for an unsure hold sleeps a poll interval, uncounted; at the deadline the wait "
        "ends and cancels nothing") {
        const px::PollPolicy policy = steady_policy(10s);
        pd::BasicWaitMachine<pd::AgentResponses> wait(policy, t0 + policy.deadline, "resp-1", true);
        REQUIRE(wait.start().action == pd::ResponseWaitStep::Action::poll);
        // Before any answer: the first interval, and the poll to come is still the first.
        auto held_off = wait.hold_unsure(t0, 0.5);
        CHECK(held_off.action == pd::ResponseWaitStep::Action::sleep);
        CHECK(held_off.delay == 1s);
        CHECK(held_off.poll == 0);
        CHECK(wait.woke().action == pd::ResponseWaitStep::Action::poll);

        pd::WaitMachine running(policy, t0 + policy.deadline, "job-1", true);
        auto in_progress = answer(px::JobStatus::in_progress);
        const auto slept = running.polled(in_progress, false, t0, 0.5);
        REQUIRE(slept.action == Action::sleep);
        CHECK(slept.poll == 1);
        // Held off after the first poll: the interval that poll had, not a longer one.
        const auto again = running.hold_unsure(t0 + 1s, 0.5);
        CHECK(again.action == Action::sleep);
        CHECK(again.delay == slept.delay);
        CHECK(again.poll == 1);
        // Cut short to end at the deadline.
        CHECK(running.hold_unsure(t0 + 9600ms, 0.5).delay == 400ms);
        // The deadline passed while held off: the wait ends with it, and asks for no cancel even though
        // cancel_on_abandon is set, since another process may hold the job.
        const auto late = running.hold_unsure(t0 + 10s, 0.5);
        CHECK(late.action == Action::finish);
        auto outcome = std::move(running).result();
        REQUIRE_FALSE(outcome.has_value());
        CHECK(outcome.error().kind == px::ErrorKind::wait_deadline);
        CHECK(outcome.error().message.find("held off") != std::string::npos);
        REQUIRE(outcome.error().job != nullptr);
        CHECK(outcome.error().job->status == px::JobStatus::in_progress);
    }
}

}  // namespace wait_machine_tests
