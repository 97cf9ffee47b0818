// Clients of a fleet, each with its own PostgresLedger on one database, against a simulator that
// enforces a create rate: one shared pace keeps the fleet within it (and two private paces do not), and
// a replica whose lease ran out loses its wait to the replica that took its entry over, which alone
// records and reports the outcome, and one that cannot confirm its lease holds off its polls until it
// can. Built into the PostgreSQL test program.
#include "../ledger/postgres_test_support.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <perplexity/postgres_ledger.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace pt = postgres_test;
using Clock = std::chrono::steady_clock;

/// Opens a PostgresLedger on the harness's own io_context.
std::shared_ptr<px::PostgresLedger> open_on(test::Harness& harness, px::PostgresLedgerOptions options) {
    auto opened = harness.run(
        px::PostgresLedger::open(harness.io.get_executor(), pt::socket_conninfo(), std::move(options)));
    if (!opened) {
        FAIL(opened.error());
    }
    return *opened;
}

/// Client options of a replica on `ledger` that polls its jobs every 50 ms.
px::ClientOptions replica_options(const test::Harness& harness, std::shared_ptr<px::PostgresLedger> ledger) {
    px::ClientOptions options = harness.client_options();
    options.ledger = std::move(ledger);
    options.poll.backoff = {.initial = 50ms, .growth = 1.0, .max = 50ms, .jitter = 0};
    return options;
}

/// Runs the harness's io_context until `condition` holds or `until` passes; whether it holds.
template <class Condition>
bool run_until(test::Harness& harness, Condition condition, Clock::time_point until) {
    while (!condition() && Clock::now() < until) {
        harness.io.restart();
        harness.io.run_one_for(20ms);
    }
    return condition();
}

/// Runs the harness's io_context for `duration`.
void run_for(test::Harness& harness, std::chrono::milliseconds duration) {
    const auto never = [] { return false; };
    run_until(harness, never, Clock::now() + duration);
}

/// Runs `count` questions at once on each client, all on the harness's io_context; their outcomes.
std::vector<px::expected<px::Job, px::Error>> run_all(test::Harness& harness,
                                                      std::vector<px::Client*> clients, int count) {
    std::vector<std::optional<px::expected<px::Job, px::Error>>> outcomes(clients.size() * count);
    std::size_t slot = 0;
    for (px::Client* client : clients) {
        for (int i = 0; i < count; ++i) {
            asio::co_spawn(
                harness.io,
                [client, &outcome = outcomes[slot], i]() -> asio::awaitable<void> {
                    outcome.emplace(co_await client->run(test::question("fleet " + std::to_string(i))));
                },
                asio::detached);
            ++slot;
        }
    }
    const auto all_done = [&] {
        return std::all_of(outcomes.begin(), outcomes.end(),
                           [](const auto& outcome) { return outcome.has_value(); });
    };
    REQUIRE(run_until(harness, all_done, Clock::now() + 60s));
    std::vector<px::expected<px::Job, px::Error>> done;
    for (auto& outcome : outcomes) {
        done.push_back(std::move(*outcome));
    }
    return done;
}

}  // namespace

TEST_CASE(
    "two replicas sharing a PostgreSQL pace stay within the account's create rate; private paces do not") {
    // 600 creates a minute (one per 100 ms), a bucket of two.
    perplexity_sim::SimulatorOptions limited;
    limited.creates_per_minute = 600;
    limited.create_burst = 2;
    for (const bool shared : {true, false}) {
        CAPTURE(shared);
        pt::drop_tables();
        test::Harness harness(limited);
        auto ledger_a = open_on(harness, {.replica = "a"});
        auto ledger_b = open_on(harness, {.replica = "b"});
        px::ClientOptions options_a = harness.client_options();
        px::ClientOptions options_b = harness.client_options();
        options_a.ledger = ledger_a;
        options_b.ledger = ledger_b;
        options_a.poll.backoff = {.initial = 20ms, .growth = 1.0, .max = 20ms, .jitter = 0};
        options_b.poll = options_a.poll;
        if (shared) {
            options_a.shared_create_pace = ledger_a->create_pace(600);
            options_b.shared_create_pace = ledger_b->create_pace(600);
        } else {
            // Each paces itself to the whole account's rate: together they send twice too many.
            options_a.create_requests_per_minute = 600;
            options_b.create_requests_per_minute = 600;
        }
        px::Client a(harness.io.get_executor(), options_a);
        px::Client b(harness.io.get_executor(), options_b);
        const auto outcomes = run_all(harness, {&a, &b}, 8);
        for (const auto& outcome : outcomes) {
            CHECK(outcome.has_value());
        }
        const auto stats = harness.simulator.stats();
        CHECK(stats.jobs_created == 16);
        if (shared) {
            CHECK(stats.creates_rate_limited == 0);
            // 16 creates one slot apart: 15 intervals of 100 ms, give or take a round trip.
            CHECK(stats.admitted_create_span() >= 1400ms);
        } else {
            CHECK(stats.creates_rate_limited > 0);
        }
        CHECK(pt::query_value("SELECT count(*) FROM perplexity_entries WHERE state = 'completed'") == "16");
        harness.run(ledger_a->close());
        harness.run(ledger_b->close());
    }
}

TEST_CASE("a replica whose entry was taken over stops waiting; the one that took it reports the outcome") {
    pt::drop_tables();
    perplexity_sim::SimulatorOptions slow;
    slow.in_progress_for = 1500ms;
    test::Harness harness(slow);
    auto ledger_a = open_on(harness, {.replica = "a", .lease = 600ms});
    px::Client a(harness.io.get_executor(), replica_options(harness, ledger_a));

    std::optional<px::expected<px::Job, px::Error>> outcome_a;
    asio::co_spawn(
        harness.io,
        [&]() -> asio::awaitable<void> { outcome_a.emplace(co_await a.run(test::question("taken over"))); },
        asio::detached);
    // Until the job is created and its id recorded.
    const auto until = Clock::now() + 10s;
    REQUIRE(run_until(
        harness,
        [] {
            return pt::query_value("SELECT count(*) FROM perplexity_entries WHERE state = 'running'") == "1";
        },
        until));

    // a cannot renew (as if the database were out of its reach) until its lease ran out; b takes the
    // entry over. a's ledger calls wait meanwhile, behind its renewal.
    pt::LeaseBlocker blocked("a");
    REQUIRE(blocked.wait_until_expired(5s));
    auto ledger_b = open_on(harness, {.replica = "b", .lease = 600ms});
    px::Client b(harness.io.get_executor(), replica_options(harness, ledger_b));
    std::vector<px::expected<px::Job, px::Error>> outcomes_b;
    px::ResumeOptions resume;
    resume.on_job = [&](const px::LedgerEntry&, const px::expected<px::Job, px::Error>& job) {
        outcomes_b.push_back(job);
    };
    auto report = harness.run(b.resume(resume));
    REQUIRE(report.has_value());
    CHECK(report->resumed.size() == 1);
    REQUIRE(outcomes_b.size() == 1);
    CHECK(outcomes_b.front().has_value());
    blocked.release();

    REQUIRE(run_until(
        harness, [&] { return outcome_a.has_value(); }, until));
    REQUIRE_FALSE(outcome_a->has_value());
    CHECK(outcome_a->error().kind == px::ErrorKind::taken_over);
    REQUIRE(outcome_a->error().job_id.has_value());
    CHECK(*outcome_a->error().job_id == outcomes_b.front()->id);
    // One outcome, recorded by b; one job.
    CHECK(pt::query_value("SELECT state || ' ' || holder FROM perplexity_entries") == "completed b");
    CHECK(harness.simulator.stats().jobs_created == 1);
    harness.run(ledger_a->close());
    harness.run(ledger_b->close());
}

TEST_CASE("a replica that cannot confirm its lease holds off its polls, and carries on once it renews") {
    pt::drop_tables();
    perplexity_sim::SimulatorOptions slow;
    slow.in_progress_for = 5s;
    test::Harness harness(slow);
    auto ledger_a = open_on(harness, {.replica = "a", .lease = 600ms});
    px::Client a(harness.io.get_executor(), replica_options(harness, ledger_a));

    int polls = 0;
    px::WaitOptions wait;
    wait.on_progress = [&](const px::ProgressEvent& event) {
        if (event.kind == px::ProgressEvent::Kind::polled) {
            ++polls;
        }
    };
    std::optional<px::expected<px::Job, px::Error>> outcome;
    asio::co_spawn(
        harness.io,
        [&]() -> asio::awaitable<void> { outcome.emplace(co_await a.run(test::question("held off"), wait)); },
        asio::detached);
    // Past the status changes (each one waits for the database): the job is IN_PROGRESS, and polled.
    REQUIRE(run_until(
        harness, [&] { return polls >= 3; }, Clock::now() + 10s));
    const px::EntryId entry = std::stoll(pt::query_value("SELECT id FROM perplexity_entries"));

    // a's renewals wait behind a lock, as if the database were out of its reach while the API is not.
    std::optional<pt::LeaseBlocker> blocked(std::in_place, "a");
    REQUIRE(run_until(
        harness, [&] { return ledger_a->holding(entry) == px::EntryHold::unsure; }, Clock::now() + 5s));
    const int polls_when_unsure = polls;
    // A lease and more: another replica could have taken the job by now, so a must not be polling it.
    run_for(harness, 800ms);
    CHECK_FALSE(outcome.has_value());
    // At most the poll that was on its way when the lease went unconfirmed.
    CHECK(polls <= polls_when_unsure + 1);

    // Nobody took it: once a renews, it carries on and records the outcome itself.
    blocked.reset();
    REQUIRE(run_until(
        harness, [&] { return outcome.has_value(); }, Clock::now() + 15s));
    CHECK(outcome->has_value());
    CHECK(polls > polls_when_unsure + 1);
    CHECK(pt::query_value("SELECT state || ' ' || holder FROM perplexity_entries") == "completed a");
    CHECK(harness.simulator.stats().jobs_created == 1);
    harness.run(ledger_a->close());
}
