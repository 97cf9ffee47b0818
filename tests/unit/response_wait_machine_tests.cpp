// The wait machine with the Agent API's vocabulary: the response statuses (failures that come as a 200
// with status failed, cancelled during a wait, requires_action, incomplete, unknown statuses), the
// settlement of run_response's create without an idempotency key, and cancel-on-abandon. No socket, no
// clock, no sleeping.
#include <perplexity/detail/wait_machine.hpp>

#include <boost/asio/error.hpp>

#include <doctest/doctest.h>

#include <string>

// A namespace of its own: the unit files are compiled as one unity translation unit.
namespace response_wait_machine_tests {

namespace px = perplexity;
namespace pd = perplexity::detail;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Action = pd::ResponseWaitStep::Action;

namespace {

const pd::Clock::time_point t0 = pd::Clock::time_point(100h);

px::PollPolicy steady_policy(milliseconds deadline = 60s) {
    px::PollPolicy policy;
    policy.backoff.initial = 1s;
    policy.backoff.growth = 1.0;
    policy.backoff.max = 1s;
    policy.backoff.jitter = 0;
    policy.deadline = deadline;
    policy.last_poll_margin = 0ms;
    return policy;
}

px::Response response(std::string status_text, std::string id = "resp_1") {
    px::Response response;
    response.id = std::move(id);
    response.status_text = std::move(status_text);
    response.status = px::response_status_from_string(response.status_text);
    return response;
}

px::expected<px::Response, px::Error> answer(std::string status_text) {
    return response(std::move(status_text));
}

px::expected<px::CancelAcknowledgement, px::Error> acknowledged() {
    return px::CancelAcknowledgement{.response_id = "resp_1", .status = "cancelling"};
}

}  // namespace

TEST_SUITE("response wait machine") {
    TEST_CASE("each status ends the wait as the contract says, or keeps it going") {
        struct Row {
            const char* status;
            Action action;
            bool is_result;
            px::ErrorKind kind;
        };
        const Row rows[] = {
            {"queued", Action::sleep, false, {}},
            {"in_progress", Action::sleep, false, {}},
            // A status this release does not know is tolerated: the wait goes on.
            {"thinking_hard", Action::sleep, false, {}},
            {"completed", Action::finish, true, {}},
            // The caller's turn: the response, with its function calls, is the result.
            {"requires_action", Action::finish, true, {}},
            {"incomplete", Action::finish, true, {}},
            // The API reports these as HTTP 200 with a status; they are Errors all the same.
            {"failed", Action::finish, false, px::ErrorKind::job_failed},
            {"cancelled", Action::finish, false, px::ErrorKind::response_cancelled},
        };
        for (const Row& row : rows) {
            CAPTURE(row.status);
            const px::PollPolicy policy = steady_policy();
            pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1");
            REQUIRE(machine.start().action == Action::poll);
            auto seen = answer(row.status);
            const auto step = machine.polled(seen, false, t0, 0.5);
            CHECK(step.action == row.action);
            REQUIRE(step.job != nullptr);
            CHECK(step.job->status_text == row.status);
            if (row.action != Action::finish) {
                continue;
            }
            auto result = std::move(machine).result();
            REQUIRE(result.has_value() == row.is_result);
            if (row.is_result) {
                CHECK(result->status_text == row.status);
            } else {
                CHECK(result.error().kind == row.kind);
                CHECK(result.error().job_id == "resp_1");
                REQUIRE(result.error().response != nullptr);
                CHECK(result.error().response->status_text == row.status);
                CHECK(result.error().job == nullptr);
            }
        }
    }

    TEST_CASE("a failed response's Error carries the API's error object") {
        const px::PollPolicy policy = steady_policy();
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1");
        px::expected<px::Response, px::Error> failed = response("failed");
        failed->error =
            px::ResponseError{.message = "the model crashed", .code = "500", .type = "server_error"};
        CHECK(machine.polled(failed, false, t0, 0.5).action == Action::finish);
        const px::Error error = std::move(machine).result().error();
        CHECK(error.kind == px::ErrorKind::job_failed);
        CHECK(error.api_message == "the model crashed");
        CHECK(error.api_type == "server_error");
        CHECK(error.message.find("resp_1") != std::string::npos);
    }

    TEST_CASE("cancelled during a wait: running, then cancelled, is its own outcome") {
        const px::PollPolicy policy = steady_policy();
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1");
        auto running = answer("in_progress");
        CHECK(machine.polled(running, false, t0, 0.5).action == Action::sleep);
        CHECK(machine.woke().action == Action::poll);
        auto cancelled = answer("cancelled");
        const auto step = machine.polled(cancelled, false, t0 + 1s, 0.5);
        CHECK(step.action == Action::finish);
        CHECK(step.status_changed);
        const px::Error error = std::move(machine).result().error();
        CHECK(error.kind == px::ErrorKind::response_cancelled);
        CHECK(error.kind != px::ErrorKind::cancelled);
    }

    TEST_CASE("a stale answer (queued after in_progress) is not news") {
        const px::PollPolicy policy = steady_policy();
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1");
        auto running = answer("in_progress");
        machine.polled(running, false, t0, 0.5);
        machine.woke();
        auto stale = answer("queued");
        const auto step = machine.polled(stale, false, t0 + 1s, 0.5);
        CHECK(step.action == Action::sleep);
        CHECK(step.polled);
        CHECK_FALSE(step.status_changed);
    }

    TEST_CASE(
        "run_response: a create that may have reached the API says a run may exist and cannot be found") {
        const px::PollPolicy policy = steady_policy();
        struct Row {
            px::ErrorKind kind;
            bool may_have_acted;
        };
        for (const Row row : {Row{px::ErrorKind::timeout, true}, Row{px::ErrorKind::transport, false},
                              Row{px::ErrorKind::rate_limited, false}}) {
            CAPTURE(row.may_have_acted);
            pd::ResponseWaitMachine machine(policy, t0 + policy.deadline);
            px::expected<px::Response, px::Error> failed =
                px::unexpected(px::Error{.kind = row.kind, .message = "create failed"});
            CHECK(machine.created(failed, row.may_have_acted, {}, t0, 0.5).action == Action::finish);
            const px::Error error = std::move(machine).result().error();
            CHECK(error.job_may_exist == row.may_have_acted);
            CHECK_FALSE(error.idempotency_key.has_value());
            if (row.may_have_acted) {
                CHECK(error.message.find("cannot be looked up") != std::string::npos);
                CHECK(error.message.find("no idempotency key and no list") != std::string::npos);
            } else {
                CHECK(error.message.find("no response was created") != std::string::npos);
            }
        }
    }

    TEST_CASE("run_response: the create's answer is the first sight of the response") {
        const px::PollPolicy policy = steady_policy();
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline);
        auto queued = answer("queued");
        const auto step = machine.created(queued, true, {}, t0, 0.5);
        CHECK(step.created);
        CHECK(step.status_changed);
        CHECK(step.action == Action::sleep);
        CHECK(machine.job_id() == "resp_1");
    }

    TEST_CASE("cancel on abandon: the caller's cancellation first cancels the run on the server") {
        const px::PollPolicy policy = steady_policy();
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1", true);
        auto running = answer("in_progress");
        machine.polled(running, false, t0, 0.5);
        CHECK(machine.interrupted(boost::asio::error::operation_aborted).action == Action::cancel_on_server);
        CHECK(machine.cancel_answered(acknowledged()).action == Action::finish);
        const px::Error error = std::move(machine).result().error();
        CHECK(error.kind == px::ErrorKind::cancelled);
        CHECK(error.job_id == "resp_1");
        REQUIRE(error.response != nullptr);
        CHECK(error.message.find("cancelled on the server") != std::string::npos);
    }

    TEST_CASE("cancel on abandon: a deadline's cancelled run is not said to be still completing") {
        const px::PollPolicy policy = steady_policy(1500ms);
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1", true);
        auto running = answer("in_progress");
        machine.polled(running, false, t0, 0.5);
        machine.woke();
        auto still = answer("in_progress");
        REQUIRE(machine.polled(still, false, t0 + 1500ms, 0.5).action == Action::cancel_on_server);
        machine.cancel_answered(acknowledged());
        const px::Error error = std::move(machine).result().error();
        CHECK(error.kind == px::ErrorKind::wait_deadline);
        CHECK(error.message.find("may still complete") == std::string::npos);
        CHECK(error.message.find("the run was cancelled on the server") != std::string::npos);
    }

    TEST_CASE("cancel on abandon: the deadline cancels the run too, and a failed cancel is said") {
        const px::PollPolicy policy = steady_policy(1500ms);
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1", true);
        auto running = answer("in_progress");
        CHECK(machine.polled(running, false, t0, 0.5).action == Action::sleep);
        machine.woke();
        auto still = answer("in_progress");
        // 1.5 s in, the next poll would come after the deadline.
        CHECK(machine.polled(still, false, t0 + 1500ms, 0.5).action == Action::cancel_on_server);
        const px::expected<px::CancelAcknowledgement, px::Error> refused =
            px::unexpected(px::Error{.kind = px::ErrorKind::transport, .message = "connection reset"});
        CHECK(machine.cancel_answered(refused).action == Action::finish);
        const px::Error error = std::move(machine).result().error();
        CHECK(error.kind == px::ErrorKind::wait_deadline);
        CHECK(error.message.find("cancelling the run on the server failed") != std::string::npos);
        CHECK(error.message.find("Client::cancel_response") != std::string::npos);
    }

    TEST_CASE("cancel on abandon: a run that had already ended is said so") {
        const px::PollPolicy policy = steady_policy();
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1", true);
        CHECK(machine.interrupted(boost::asio::error::operation_aborted).action == Action::cancel_on_server);
        const px::expected<px::CancelAcknowledgement, px::Error> ended = px::unexpected(
            px::Error{.kind = px::ErrorKind::http_status, .message = "400", .http_status = 400});
        machine.cancel_answered(ended);
        const px::Error error = std::move(machine).result().error();
        CHECK(error.message.find("already ended") != std::string::npos);
    }

    TEST_CASE("cancel on abandon is not asked for: without the option, a failed poll, an ending, a create") {
        const px::PollPolicy policy = steady_policy();
        SUBCASE("without the option") {
            pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1");
            CHECK(machine.interrupted(boost::asio::error::operation_aborted).action == Action::finish);
        }
        SUBCASE("a poll that failed for good (a 404) is not an abandon") {
            pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1", true);
            px::expected<px::Response, px::Error> missing = px::unexpected(
                px::Error{.kind = px::ErrorKind::http_status, .message = "404", .http_status = 404});
            CHECK(machine.polled(missing, false, t0, 0.5).action == Action::finish);
        }
        SUBCASE("a run that ended needs no cancel") {
            pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1", true);
            auto failed = answer("failed");
            CHECK(machine.polled(failed, false, t0, 0.5).action == Action::finish);
        }
        SUBCASE("cancelled before the create answered: no id, nothing to cancel") {
            pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, {}, true);
            CHECK(machine.interrupted(boost::asio::error::operation_aborted).action == Action::finish);
        }
        SUBCASE("the Sonar API has no cancel: its machine never asks") {
            pd::WaitMachine machine(policy, t0 + policy.deadline, "job-1", true);
            CHECK(machine.interrupted(boost::asio::error::operation_aborted).action ==
                  pd::WaitStep::Action::finish);
        }
    }

    TEST_CASE("cancel on abandon: a cancelled poll is an abandon too, and interrupting the cancel ends it") {
        const px::PollPolicy policy = steady_policy();
        pd::ResponseWaitMachine machine(policy, t0 + policy.deadline, "resp_1", true);
        px::expected<px::Response, px::Error> cancelled_poll =
            px::unexpected(px::Error{.kind = px::ErrorKind::cancelled, .message = "cancelled"});
        CHECK(machine.polled(cancelled_poll, false, t0, 0.5).action == Action::cancel_on_server);
        CHECK(machine.interrupted(boost::asio::error::operation_aborted).action == Action::finish);
        const px::Error error = std::move(machine).result().error();
        CHECK(error.kind == px::ErrorKind::cancelled);
        CHECK(error.message.find("cancelling the run on the server failed") != std::string::npos);
    }
}

}  // namespace response_wait_machine_tests
