// The request machine as tables: every status, hint form, failure, attempt count, deadline position and
// cancellation point, with the time and the random numbers as inputs. No socket, no clock, no sleeping.
#include <perplexity/detail/pacer.hpp>
#include <perplexity/detail/request_machine.hpp>

#include <boost/asio/error.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>

// A namespace of its own: the unit files are compiled as one unity translation unit.
namespace request_machine_tests {

namespace px = perplexity;
namespace pd = perplexity::detail;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Action = pd::RequestStep::Action;

namespace {

const pd::Clock::time_point t0 = pd::Clock::time_point(100h);

px::RetryPolicy no_jitter_policy(unsigned attempts = 4) {
    px::RetryPolicy policy;
    policy.max_attempts = attempts;
    policy.backoff.initial = 500ms;
    policy.backoff.growth = 2.0;
    policy.backoff.max = 8s;
    policy.backoff.jitter = 0;
    return policy;
}

pd::SendFailure failure(px::ErrorKind kind, bool may_have_arrived) {
    return {px::Error{.kind = kind, .message = "failed"}, may_have_arrived};
}

/// A machine with its own pacer and policy, sending at t0.
struct Fixture {
    px::RetryPolicy policy = no_jitter_policy();
    pd::Pacer pacer;
    pd::RequestMachine machine;

    explicit Fixture(bool resend_safe, pd::Clock::time_point deadline = pd::no_deadline(),
                     px::RetryPolicy retry = no_jitter_policy())
        : policy(retry), machine(policy, pacer, resend_safe, deadline) {}
};

}  // namespace

TEST_SUITE("request machine") {
    TEST_CASE("a 2xx on the first attempt finishes with the answer, which may have acted") {
        Fixture f(false);
        const auto first = f.machine.start(t0);
        CHECK(first.action == Action::send);
        CHECK(first.attempt == 1);
        CHECK(first.budget == milliseconds::max());
        const auto done = f.machine.answered({.status = 201}, t0 + 5ms, 0.5);
        CHECK(done.action == Action::finish);
        CHECK(f.machine.finished_with_answer());
        CHECK(f.machine.may_have_acted());
        CHECK_FALSE(f.machine.gave_up_for_deadline());
    }

    TEST_CASE("what each status does, by resend safety and x-should-retry") {
        struct Row {
            int status;
            std::optional<bool> should_retry;
            bool resend_safe;
            bool retried;
            bool may_have_acted;
        };
        const Row rows[] = {
            {500, std::nullopt, true, true, true},   {500, std::nullopt, false, false, true},
            {502, std::nullopt, true, true, true},   {503, std::nullopt, false, false, true},
            {429, std::nullopt, false, true, false}, {429, std::nullopt, true, true, false},
            {408, std::nullopt, false, true, false}, {409, std::nullopt, true, true, true},
            {409, std::nullopt, false, false, true}, {400, std::nullopt, true, false, false},
            {401, std::nullopt, true, false, false}, {403, std::nullopt, true, false, false},
            {404, std::nullopt, true, false, false}, {422, std::nullopt, false, false, false},
            {500, false, true, false, true},         {400, true, true, true, false},
            {404, true, false, false, false},        {500, true, false, false, true},
            {429, false, false, false, false},       {408, false, true, false, false},
            {302, std::nullopt, true, false, true},
        };
        for (const Row& row : rows) {
            CAPTURE(row.status);
            CAPTURE(row.resend_safe);
            CAPTURE(row.should_retry.value_or(false));
            Fixture f(row.resend_safe);
            REQUIRE(f.machine.start(t0).action == Action::send);
            const auto next =
                f.machine.answered({.status = row.status, .should_retry = row.should_retry}, t0, 0.5);
            CHECK((next.action == Action::sleep) == row.retried);
            CHECK(f.machine.may_have_acted() == row.may_have_acted);
            if (row.retried) {
                REQUIRE(next.retrying != nullptr);
                CHECK(next.retrying->http_status == row.status);
                CHECK(next.retrying->kind ==
                      (row.status == 429 ? px::ErrorKind::rate_limited : px::ErrorKind::http_status));
                CHECK(next.attempt == 1);
                CHECK(next.delay == 500ms);
            } else {
                CHECK(next.action == Action::finish);
                CHECK(f.machine.finished_with_answer());
            }
        }
    }

    TEST_CASE("what each failure does, by whether it may have arrived and resend safety") {
        struct Row {
            px::ErrorKind kind;
            bool may_have_arrived;
            bool resend_safe;
            bool retried;
        };
        const Row rows[] = {
            {px::ErrorKind::transport, false, false, true}, {px::ErrorKind::transport, true, false, false},
            {px::ErrorKind::transport, true, true, true},   {px::ErrorKind::timeout, false, false, true},
            {px::ErrorKind::timeout, true, false, false},   {px::ErrorKind::timeout, true, true, true},
            {px::ErrorKind::tls, false, true, false},       {px::ErrorKind::protocol, true, true, false},
            {px::ErrorKind::cancelled, false, true, false}, {px::ErrorKind::cancelled, true, true, false},
        };
        for (const Row& row : rows) {
            CAPTURE(px::to_string(row.kind));
            CAPTURE(row.may_have_arrived);
            CAPTURE(row.resend_safe);
            Fixture f(row.resend_safe);
            REQUIRE(f.machine.start(t0).action == Action::send);
            const auto next = f.machine.failed(failure(row.kind, row.may_have_arrived), t0, 0.5);
            CHECK((next.action == Action::sleep) == row.retried);
            CHECK(f.machine.may_have_acted() == row.may_have_arrived);
            if (!row.retried) {
                CHECK_FALSE(f.machine.finished_with_answer());
                CHECK(f.machine.error().kind == row.kind);
            }
        }
    }

    TEST_CASE("never more sends than max_attempts, the last answer being the result") {
        for (unsigned attempts : {1u, 2u, 4u, 7u}) {
            CAPTURE(attempts);
            Fixture f(true, pd::no_deadline(), no_jitter_policy(attempts));
            auto now = t0;
            auto step = f.machine.start(now);
            unsigned sends = 0;
            while (step.action != Action::finish) {
                if (step.action == Action::send) {
                    ++sends;
                    CHECK(step.attempt == sends);
                    step = f.machine.answered({.status = 503}, now, 0.5);
                } else {
                    now = step.until;
                    step = f.machine.woke(now);
                }
            }
            CHECK(sends == attempts);
            CHECK(f.machine.finished_with_answer());
        }
    }

    TEST_CASE("backoff doubles per retry; hints are clamped to the policy") {
        Fixture f(true);
        auto step = f.machine.start(t0);
        step = f.machine.failed(failure(px::ErrorKind::transport, true), t0, 0.5);
        CHECK(step.delay == 500ms);
        CHECK(step.until == t0 + 500ms);
        step = f.machine.woke(step.until);
        REQUIRE(step.action == Action::send);
        CHECK(step.attempt == 2);
        step = f.machine.failed(failure(px::ErrorKind::timeout, true), t0 + 600ms, 0.5);
        CHECK(step.delay == 1000ms);
        step = f.machine.woke(step.until);
        step = f.machine.answered({.status = 503, .retry_hint = 10min}, t0 + 2s, 0.5);
        CHECK(step.delay == f.policy.max_hint);
        step = f.machine.woke(step.until);
        REQUIRE(step.attempt == 4);

        Fixture g(true);
        g.machine.start(t0);
        CHECK(g.machine.answered({.status = 503, .retry_hint = 0ms}, t0, 0.5).delay == g.policy.min_hint);
        Fixture h(true);
        h.machine.start(t0);
        CHECK(h.machine.answered({.status = 503, .retry_hint = 1200ms}, t0, 0.5).delay == 1200ms);
    }

    TEST_CASE("a retry that would end after the deadline is not made") {
        SUBCASE("after an answer, the answer is the result") {
            Fixture f(true, t0 + 400ms);
            REQUIRE(f.machine.start(t0).budget == 400ms);
            CHECK(f.machine.answered({.status = 503}, t0, 0.5).action == Action::finish);
            CHECK(f.machine.finished_with_answer());
            CHECK(f.machine.gave_up_for_deadline());
        }
        SUBCASE("after a failure, the failure is") {
            Fixture f(true, t0 + 500ms);
            f.machine.start(t0);
            CHECK(f.machine.failed(failure(px::ErrorKind::transport, false), t0, 0.5).action ==
                  Action::finish);
            CHECK_FALSE(f.machine.finished_with_answer());
            CHECK(f.machine.error().kind == px::ErrorKind::transport);
            CHECK(f.machine.gave_up_for_deadline());
        }
        SUBCASE("one that ends just before it is made") {
            Fixture f(true, t0 + 501ms);
            f.machine.start(t0);
            const auto step = f.machine.failed(failure(px::ErrorKind::transport, false), t0, 0.5);
            CHECK(step.action == Action::sleep);
            const auto send = f.machine.woke(step.until);
            CHECK(send.action == Action::send);
            CHECK(send.budget == 1ms);
        }
        SUBCASE("a sleep that overran the deadline sends nothing more") {
            Fixture f(true, t0 + 501ms);
            f.machine.start(t0);
            f.machine.failed(failure(px::ErrorKind::transport, false), t0, 0.5);
            CHECK(f.machine.woke(t0 + 600ms).action == Action::finish);
            CHECK(f.machine.error().kind == px::ErrorKind::timeout);
            CHECK(f.machine.gave_up_for_deadline());
        }
    }

    TEST_CASE("pacing: an even spacing shared by the machines of one pacer, within the deadline") {
        px::RetryPolicy policy = no_jitter_policy();
        pd::Pacer pacer;
        pacer.set_rate(60);
        pd::RequestMachine first(policy, pacer, false, pd::no_deadline());
        pd::RequestMachine second(policy, pacer, false, pd::no_deadline());
        pd::RequestMachine late(policy, pacer, false, t0 + 1500ms);
        CHECK(first.start(t0).action == Action::send);
        const auto paced = second.start(t0);
        CHECK(paced.action == Action::sleep);
        CHECK(paced.until == t0 + 1s);
        CHECK(paced.retrying == nullptr);
        CHECK(second.woke(t0 + 1s).action == Action::send);
        // The next slot (t0 + 2 s) is past its deadline: it gives up without taking the slot.
        CHECK(late.start(t0).action == Action::finish);
        CHECK(late.error().kind == px::ErrorKind::timeout);
        CHECK(late.error().message.find("pacing") != std::string::npos);
        CHECK(late.gave_up_for_deadline());
        CHECK(pacer.next_slot(t0) == t0 + 2s);
    }

    TEST_CASE("a pacing wait that overran the deadline ends the request") {
        px::RetryPolicy policy = no_jitter_policy();
        pd::Pacer pacer;
        pacer.set_rate(60);
        pacer.reserve(t0);
        pd::RequestMachine machine(policy, pacer, true, t0 + 1100ms);
        REQUIRE(machine.start(t0).action == Action::sleep);
        CHECK(machine.woke(t0 + 1200ms).action == Action::finish);
        CHECK(machine.error().kind == px::ErrorKind::timeout);
    }

    // Regression: the pacer was paused for the unjittered backoff while the request slept for, and
    // reported, a jittered delay; every rate-limited request then woke at the same moment.
    TEST_CASE("an unhinted 429 waits what it reports, and its retries stay spread by the jitter") {
        px::RetryPolicy policy = no_jitter_policy();
        policy.backoff.initial = 400ms;
        policy.backoff.jitter = 0.9;
        pd::Pacer pacer;
        pd::RequestMachine early(policy, pacer, false, pd::no_deadline());
        pd::RequestMachine late(policy, pacer, false, pd::no_deadline());
        early.start(t0);
        late.start(t0);
        const auto early_sleep = early.answered({.status = 429}, t0, 0.5);  // 400 * (1 - 0.45)
        const auto late_sleep = late.answered({.status = 429}, t0, 0.0);    // 400 * 1
        REQUIRE(early_sleep.action == Action::sleep);
        CHECK(early_sleep.delay == 220ms);
        CHECK(early_sleep.until == t0 + 220ms);
        CHECK(late_sleep.delay == 400ms);
        CHECK(pacer.paused_until() == t0 + 400ms);
        // Each retry goes when its own delay ends, not when the longest pause does...
        const auto early_retry = early.woke(t0 + 220ms);
        CHECK(early_retry.action == Action::send);
        CHECK(early_retry.attempt == 2);
        CHECK(late.woke(t0 + 400ms).action == Action::send);
        // ...while a request that has not met a 429 itself waits for the pause.
        pd::RequestMachine fresh(policy, pacer, false, pd::no_deadline());
        const auto held = fresh.start(t0 + 220ms);
        CHECK(held.action == Action::sleep);
        CHECK(held.until == t0 + 400ms);
    }

    TEST_CASE("a hinted 429 pauses the pacer for the clamped hint") {
        Fixture f(false);
        f.machine.start(t0);
        const auto step = f.machine.answered({.status = 429, .retry_hint = 3s}, t0, 0.5);
        CHECK(step.delay == 3s);
        CHECK(f.pacer.paused_until() == t0 + 3s);
        CHECK(f.pacer.next_slot(t0 + 1s) == t0 + 3s);
    }

    TEST_CASE("cancellation: before the send nothing can have acted; during it, something may have") {
        SUBCASE("while waiting for a pacing slot") {
            px::RetryPolicy policy = no_jitter_policy();
            pd::Pacer pacer;
            pacer.pause_until(t0 + 1s);
            pd::RequestMachine machine(policy, pacer, false, pd::no_deadline());
            REQUIRE(machine.start(t0).action == Action::sleep);
            CHECK(machine.interrupted(boost::asio::error::operation_aborted).action == Action::finish);
            CHECK(machine.error().kind == px::ErrorKind::cancelled);
            CHECK(machine.error().cause == boost::asio::error::operation_aborted);
            CHECK_FALSE(machine.may_have_acted());
        }
        SUBCASE("while sending") {
            Fixture f(false);
            f.machine.start(t0);
            f.machine.interrupted(boost::asio::error::operation_aborted);
            CHECK(f.machine.error().kind == px::ErrorKind::cancelled);
            CHECK(f.machine.may_have_acted());
        }
        SUBCASE("while backing off after a refused attempt") {
            Fixture f(false);
            f.machine.start(t0);
            REQUIRE(f.machine.answered({.status = 429}, t0, 0.5).action == Action::sleep);
            f.machine.interrupted(boost::asio::error::operation_aborted);
            CHECK(f.machine.error().kind == px::ErrorKind::cancelled);
            CHECK_FALSE(f.machine.may_have_acted());
        }
        SUBCASE("an interruption of any other kind is still a cancellation") {
            Fixture f(true);
            f.machine.start(t0);
            f.machine.interrupted(boost::asio::error::connection_reset);
            CHECK(f.machine.error().kind == px::ErrorKind::cancelled);
        }
    }

    TEST_CASE("may_have_acted is the history of every attempt, not the last one's") {
        Fixture f(true);
        f.machine.start(t0);
        auto step = f.machine.failed(failure(px::ErrorKind::timeout, true), t0, 0.5);
        step = f.machine.woke(step.until);
        step = f.machine.answered({.status = 429}, step.until, 0.5);
        step = f.machine.woke(step.until);
        f.machine.failed(failure(px::ErrorKind::tls, false), t0 + 5s, 0.5);
        CHECK(f.machine.may_have_acted());
    }

    TEST_CASE(
        "with a shared pace, every attempt reserves a fleet slot, then sleeps until it or the local one") {
        px::RetryPolicy policy = no_jitter_policy();
        pd::Pacer pacer;
        pd::RequestMachine machine(policy, pacer, true, pd::no_deadline(), true);
        const auto first = machine.start(t0);
        CHECK(first.action == Action::reserve);
        // The fleet says 300 ms from now: the attempt sleeps until then, and only then is sent.
        const auto paced = machine.reserved(300ms, t0 + 2ms);
        CHECK(paced.action == Action::sleep);
        CHECK(paced.until == t0 + 302ms);
        CHECK(paced.retrying == nullptr);
        const auto sent = machine.woke(t0 + 302ms);
        CHECK(sent.action == Action::send);
        CHECK(sent.attempt == 1);
        // A 429: the fleet is asked to pause as long as this request backs off, and the retry reserves
        // a slot again.
        const auto backing_off = machine.answered({.status = 429, .retry_hint = 1200ms}, t0 + 310ms, 0.5);
        CHECK(backing_off.action == Action::sleep);
        CHECK(backing_off.delay == 1200ms);
        CHECK(backing_off.pause_fleet == 1200ms);
        const auto again = machine.woke(t0 + 1510ms);
        CHECK(again.action == Action::reserve);
        // A slot already due: sent at once.
        const auto now = machine.reserved(0ms, t0 + 1511ms);
        CHECK(now.action == Action::send);
        CHECK(now.attempt == 2);
        CHECK(machine.answered({.status = 200}, t0 + 1600ms, 0.5).action == Action::finish);
        CHECK(machine.finished_with_answer());
    }

    TEST_CASE(
        "with a shared pace, a slot past the deadline gives up, and a failed reservation sends nothing") {
        px::RetryPolicy policy = no_jitter_policy();
        pd::Pacer pacer;
        pd::RequestMachine late(policy, pacer, false, t0 + 1s, true);
        REQUIRE(late.start(t0).action == Action::reserve);
        CHECK(late.reserved(2s, t0).action == Action::finish);
        CHECK(late.gave_up_for_deadline());
        CHECK_FALSE(late.may_have_acted());

        pd::RequestMachine refused(policy, pacer, false, pd::no_deadline(), true);
        REQUIRE(refused.start(t0).action == Action::reserve);
        const auto done =
            refused.reservation_failed(px::Error{.kind = px::ErrorKind::ledger, .message = "down"});
        CHECK(done.action == Action::finish);
        CHECK_FALSE(refused.finished_with_answer());
        CHECK(refused.error().kind == px::ErrorKind::ledger);
        CHECK_FALSE(refused.may_have_acted());
    }

    TEST_CASE("without a shared pace, a 429 asks no fleet to pause") {
        Fixture f(true);
        REQUIRE(f.machine.start(t0).action == Action::send);
        CHECK(f.machine.answered({.status = 429, .retry_hint = 1s}, t0, 0.5).pause_fleet == 0ms);
    }
}

}  // namespace request_machine_tests
