// wait and run end to end: polling, retries with every hint form, deadlines, cancellation and pacing,
// against the simulator with scripted faults.
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <variant>

using namespace std::chrono_literals;
using test::question;
using Kind = px::ProgressEvent::Kind;
using perplexity_sim::Fault;
using perplexity_sim::Operation;

namespace {

/// Quick polling and retries, so the tests take milliseconds; distinct values make hints observable.
px::ClientOptions fast(px::ClientOptions options) {
    options.poll = {.backoff = {.initial = 5ms, .growth = 1.0, .max = 5ms, .jitter = 0}, .deadline = 20s};
    options.retry = {.max_attempts = 4,
                     .backoff = {.initial = 200ms, .growth = 1.0, .max = 200ms, .jitter = 0},
                     .min_hint = 10ms,
                     .max_hint = 60ms};
    return options;
}

struct Recorder {
    std::vector<px::ProgressEvent::Kind> kinds;
    std::vector<std::string> statuses;
    std::vector<std::chrono::milliseconds> retry_delays;
    std::vector<px::ErrorKind> retry_errors;

    px::ProgressHandler handler() {
        return [this](const px::ProgressEvent& event) {
            kinds.push_back(event.kind);
            if (event.kind == Kind::status_changed) {
                statuses.push_back(event.job->status_text);
            }
            if (event.kind == Kind::retry_scheduled) {
                retry_delays.push_back(event.delay);
                retry_errors.push_back(event.error->kind);
            }
        };
    }
};

}  // namespace

TEST_SUITE("wait and run") {
    TEST_CASE("run creates, reports progress and returns the COMPLETED job") {
        test::Harness harness({.created_polls = 2, .in_progress_polls = 2});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        Recorder recorder;
        std::optional<std::string> persisted;
        std::size_t events_before_created = 0;
        auto job = harness.run(
            client.run(question("How far is the Moon?"),
                       {.on_progress = recorder.handler(), .on_created = [&](const px::Job& created) {
                            persisted = created.id;
                            events_before_created = recorder.kinds.size();
                        }}));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
        CHECK(job->status == px::JobStatus::completed);
        REQUIRE(job->response);
        CHECK(persisted == job->id);
        CHECK(events_before_created == 0);  // the id is handed over before any poll
        REQUIRE_FALSE(recorder.kinds.empty());
        CHECK(recorder.kinds.front() == Kind::created);
        CHECK(recorder.statuses == std::vector<std::string>{"CREATED", "IN_PROGRESS", "COMPLETED"});
        CHECK(std::count(recorder.kinds.begin(), recorder.kinds.end(), Kind::polled) == 5);
        CHECK(std::count(recorder.kinds.begin(), recorder.kinds.end(), Kind::sleeping) == 5);
        CHECK(harness.simulator.stats().jobs_created == 1);
    }

    TEST_CASE("a FAILED job is a job_failed error carrying the job") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto job = harness.run(client.run(question("this will [[fail]]")));
        REQUIRE_FALSE(job.has_value());
        const px::Error& error = job.error();
        CHECK(error.kind == px::ErrorKind::job_failed);
        CHECK(error.api_message == "Internal error while processing request");
        REQUIRE(error.job);
        CHECK(error.job->status == px::JobStatus::failed);
        CHECK(error.job_id == error.job->id);
    }

    TEST_CASE("wait polls a known job to its end") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        auto job = harness.run(client.wait(created->id));
        REQUIRE(job.has_value());
        CHECK(job->status == px::JobStatus::completed);
        auto unknown = harness.run(client.wait("no-such-job"));
        REQUIRE_FALSE(unknown.has_value());
        CHECK(unknown.error().http_status == 404);
        CHECK(unknown.error().job_id == "no-such-job");
    }

    TEST_CASE("the deadline passes while the job is IN_PROGRESS") {
        test::Harness harness({.in_progress_for = std::chrono::minutes(10)});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        px::PollPolicy policy{.backoff = {.initial = 40ms, .growth = 1.0, .max = 40ms, .jitter = 0},
                              .deadline = 300ms,
                              .last_poll_margin = 20ms};
        Recorder recorder;
        auto job =
            harness.run(client.run(question("q"), {.poll = policy, .on_progress = recorder.handler()}));
        REQUIRE_FALSE(job.has_value());
        const px::Error& error = job.error();
        CHECK(error.kind == px::ErrorKind::wait_deadline);
        REQUIRE(error.job_id);
        REQUIRE(error.job);
        CHECK(error.job->status == px::JobStatus::in_progress);
        CHECK(error.message.find("may still complete") != std::string::npos);
        // The last sleep was shortened to fit one more poll in before the deadline.
        CHECK(recorder.kinds.back() == Kind::polled);
    }

    TEST_CASE("a poll whose retry the deadline leaves no room for ends the wait by its deadline") {
        test::Harness harness({.in_progress_for = std::chrono::minutes(10)});
        px::ClientOptions options = fast(harness.client_options());
        options.retry.max_hint = 5s;
        px::Client client(harness.io.get_executor(), options);
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        harness.simulator.inject(
            {.operation = Operation::get, .status = 503, .headers = {{"retry-after-ms", "2000"}}});
        px::PollPolicy policy{.backoff = {.initial = 5ms, .growth = 1.0, .max = 5ms, .jitter = 0},
                              .deadline = 500ms};
        auto job = harness.run(client.wait(created->id, {.poll = policy}));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::wait_deadline);
        CHECK(job.error().job_id == created->id);
        CHECK_MESSAGE(job.error().message.find("the last poll failed: http_status") != std::string::npos,
                      job.error().message);
        CHECK(job.error().message.find("HTTP 503") != std::string::npos);
        CHECK(harness.simulator.stats().gets_received == 1);  // no retry was squeezed in
    }
}

TEST_SUITE("retries") {
    struct HintCase {
        const char* name;
        std::string header;
        std::string value;
        std::chrono::milliseconds expected_delay;
    };

    TEST_CASE("429 with each hint form, then success") {
        const auto in_two_seconds = std::chrono::system_clock::now() + 2s;
        const std::time_t future = std::chrono::system_clock::to_time_t(in_two_seconds);
        char date[64];
        std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", std::gmtime(&future));
        for (const HintCase& hint : {HintCase{"retry-after-ms", "retry-after-ms", "30", 30ms},
                                     HintCase{"retry-after seconds (clamped up)", "retry-after", "0", 10ms},
                                     HintCase{"retry-after date (clamped down)", "retry-after", date, 60ms},
                                     HintCase{"no hint: backoff", "x-nothing", "1", 200ms}}) {
            CAPTURE(hint.name);
            test::Harness harness;
            harness.simulator.inject(
                {.operation = Operation::get, .status = 429, .headers = {{hint.header, hint.value}}});
            px::Client client(harness.io.get_executor(), fast(harness.client_options()));
            Recorder recorder;
            auto job = harness.run(client.run(question("q"), {.on_progress = recorder.handler()}));
            REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
            CHECK(recorder.retry_delays == std::vector<std::chrono::milliseconds>{hint.expected_delay});
            CHECK(recorder.retry_errors == std::vector<px::ErrorKind>{px::ErrorKind::rate_limited});
            CHECK(harness.simulator.stats().faults_applied == 1);
        }
    }

    TEST_CASE("5xx twice, then success") {
        test::Harness harness;
        harness.simulator.inject({.operation = Operation::get, .status = 503});
        harness.simulator.inject({.operation = Operation::get, .status = 500});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        auto job = harness.run(client.get(created->id));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
        CHECK(harness.simulator.stats().gets_received == 3);
    }

    TEST_CASE("attempts run out with the last error") {
        test::Harness harness;
        for (int i = 0; i < 4; ++i) {
            harness.simulator.inject({.operation = Operation::list, .status = 502});
        }
        px::ClientOptions options = fast(harness.client_options());
        options.retry.backoff.initial = options.retry.backoff.max = 1ms;
        px::Client client(harness.io.get_executor(), options);
        auto page = harness.run(client.list());
        REQUIRE_FALSE(page.has_value());
        CHECK(page.error().http_status == 502);
        CHECK(harness.simulator.stats().lists_received == 4);
    }

    TEST_CASE("x-should-retry overrides the status") {
        test::Harness harness;
        harness.simulator.inject(
            {.operation = Operation::list, .status = 503, .headers = {{"x-should-retry", "false"}}});
        harness.simulator.inject(
            {.operation = Operation::list, .status = 400, .headers = {{"x-should-retry", "true"}}});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto refused = harness.run(client.list());
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().http_status == 503);
        auto retried = harness.run(client.list());
        REQUIRE_MESSAGE(retried.has_value(), px::to_string(retried.error()));
        CHECK(harness.simulator.stats().lists_received == 3);
    }

    TEST_CASE("a connection dropped after the create was received does not create a second job") {
        test::Harness harness;
        harness.simulator.inject({.operation = Operation::create, .action = Fault::Action::drop_handled});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        Recorder recorder;
        auto job = harness.run(client.run(question("q"), {.on_progress = recorder.handler()}));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
        const auto stats = harness.simulator.stats();
        CHECK(stats.creates_received == 2);
        CHECK(stats.jobs_created == 1);
        CHECK(recorder.retry_errors == std::vector<px::ErrorKind>{px::ErrorKind::transport});
    }

    TEST_CASE("a create without a key is not resent once it may have arrived") {
        test::Harness harness;
        harness.simulator.inject({.operation = Operation::create, .action = Fault::Action::drop_handled});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto job = harness.run(client.create(question("q")));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::transport);
        CHECK(job.error().message.find("may have acted on it") != std::string::npos);
        CHECK(harness.simulator.stats().creates_received == 1);
        CHECK(harness.simulator.stats().jobs_created == 1);
    }

    TEST_CASE("a create without a key is resent after a 429, which means it was not processed") {
        test::Harness harness;
        harness.simulator.inject(
            {.operation = Operation::create, .status = 429, .headers = {{"retry-after-ms", "5"}}});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto job = harness.run(client.create(question("q")));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
        CHECK(harness.simulator.stats().creates_received == 2);
        CHECK(harness.simulator.stats().jobs_created == 1);
    }
}

TEST_SUITE("retries") {
    TEST_CASE("x-should-retry: true does not resend a create without a key") {
        // The header may stop a retry, but it cannot make a second create safe: the job may exist.
        test::Harness harness;
        harness.simulator.inject(
            {.operation = Operation::create, .status = 500, .headers = {{"x-should-retry", "true"}}});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto job = harness.run(client.create(question("q")));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().http_status == 500);
        CHECK(harness.simulator.stats().creates_received == 1);
    }

    TEST_CASE("x-should-retry: true does resend a create with a key") {
        test::Harness harness;
        harness.simulator.inject(
            {.operation = Operation::create, .status = 400, .headers = {{"x-should-retry", "true"}}});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto job = harness.run(client.create(question("q"), "key-1"));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
        CHECK(harness.simulator.stats().creates_received == 2);
        CHECK(harness.simulator.stats().jobs_created == 1);
    }
}

TEST_SUITE("cancellation") {
    TEST_CASE("during a sleep between polls") {
        test::Harness harness({.in_progress_for = std::chrono::minutes(10)});
        px::ClientOptions options = fast(harness.client_options());
        options.poll.backoff.initial = options.poll.backoff.max = std::chrono::minutes(5);
        px::Client client(harness.io.get_executor(), options);
        bool sleeping = false;
        auto job = test::cancel_when(harness.io,
                                     client.run(question("q"), {.on_progress =
                                                                    [&](const px::ProgressEvent& event) {
                                                                        sleeping =
                                                                            event.kind == Kind::sleeping;
                                                                    }}),
                                     [&] { return sleeping; });
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::cancelled);
        REQUIRE(job.error().job_id);
        auto again = harness.run(client.get(*job.error().job_id));
        CHECK(again.has_value());
    }

    TEST_CASE("while run's create waits for its pacing slot: an Error, not an exception, and nothing sent") {
        test::Harness harness;
        px::ClientOptions options = fast(harness.client_options());
        options.create_requests_per_minute = 6;  // the second create waits 10 s for its slot
        px::Client client(harness.io.get_executor(), options);
        auto first = harness.run(client.run(question("first")));
        REQUIRE(first.has_value());
        // Cancelled once everything ready has run: the second create is then asleep until its slot.
        auto second = test::cancel_when(harness.io, client.run(question("second")), [&] {
            harness.io.poll();
            return true;
        });
        REQUIRE_FALSE(second.has_value());
        CHECK(second.error().kind == px::ErrorKind::cancelled);
        CHECK_FALSE(second.error().job_may_exist);
        CHECK(harness.simulator.stats().creates_received == 1);
    }

    TEST_CASE("during a read") {
        test::Harness harness;
        harness.simulator.inject({.operation = Operation::get, .action = Fault::Action::stall});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        auto job = test::cancel_when(harness.io, client.wait(created->id),
                                     [&] { return harness.simulator.stats().gets_received == 1; });
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::cancelled);
        CHECK(job.error().job_id == created->id);
        auto again = harness.run(client.wait(created->id));
        REQUIRE_MESSAGE(again.has_value(), px::to_string(again.error()));
    }

    TEST_CASE("during connection set-up (a TLS handshake that never completes)") {
        asio::io_context io;
        test::LoopbackServer mute(io);  // accepts, reads, never speaks TLS
        const std::string url = "https" + mute.base_url().substr(4);
        px::Client client(io.get_executor(), {.base_url = url, .api_key = test::secret_key});
        auto page = test::cancel_when(io, client.list(), [&] { return mute.accepted() == 1; });
        REQUIRE_FALSE(page.has_value());
        CHECK(page.error().kind == px::ErrorKind::cancelled);
    }

    TEST_CASE("with || from the awaitable operators") {
        using namespace asio::experimental::awaitable_operators;
        test::Harness harness;
        harness.simulator.inject({.operation = Operation::get, .action = Fault::Action::stall});
        px::Client client(harness.io.get_executor(), fast(harness.client_options()));
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        auto race = [&]() -> asio::awaitable<std::variant<px::expected<px::Job, px::Error>, std::monostate>> {
            asio::steady_timer timer(harness.io, 100ms);
            co_return co_await (client.wait(created->id) || timer.async_wait(asio::use_awaitable));
        };
        auto winner = harness.run(race());
        CHECK(winner.index() == 1);
        auto again = harness.run(client.wait(created->id));
        REQUIRE_MESSAGE(again.has_value(), px::to_string(again.error()));
    }
}

TEST_SUITE("pacing") {
    TEST_CASE("the create limiter holds a batch to its rate") {
        test::Harness harness;
        px::ClientOptions options = fast(harness.client_options());
        options.create_requests_per_minute = 300;  // one every 200 ms
        px::Client client(harness.io.get_executor(), options);
        int finished = 0;
        for (int i = 0; i < 4; ++i) {
            asio::co_spawn(harness.io, client.create(question("q")),
                           [&](std::exception_ptr, px::expected<px::Job, px::Error> job) {
                               CHECK(job.has_value());
                               ++finished;
                           });
        }
        while (finished < 4) {
            REQUIRE(harness.io.run_one_for(10s) > 0);
        }
        const auto arrivals = harness.simulator.stats().create_arrivals;
        REQUIRE(arrivals.size() == 4);
        for (std::size_t i = 1; i < arrivals.size(); ++i) {
            CAPTURE(i);
            // Never faster than the rate; slack only for the first request's TLS handshake, which the
            // later ones, reusing its connection, do not pay.
            CHECK(arrivals[i] - arrivals[i - 1] >= 170ms);
        }
    }

    TEST_CASE("a 429 slows every create on the client, not only the one that got it") {
        test::Harness harness;
        harness.simulator.inject(
            {.operation = Operation::create, .status = 429, .headers = {{"retry-after-ms", "200"}}});
        px::ClientOptions options = fast(harness.client_options());
        options.retry.max_hint = 1s;
        px::Client client(harness.io.get_executor(), options);
        int finished = 0;
        auto count = [&](std::exception_ptr, px::expected<px::Job, px::Error> job) {
            CHECK(job.has_value());
            ++finished;
        };
        // The second job starts only once the first has been told to slow down.
        bool second_started = false;
        asio::co_spawn(harness.io,
                       client.run(question("first"),
                                  {.on_progress =
                                       [&](const px::ProgressEvent& event) {
                                           if (event.kind == Kind::retry_scheduled && !second_started) {
                                               second_started = true;
                                               asio::co_spawn(harness.io, client.create(question("second")),
                                                              count);
                                           }
                                       }}),
                       count);
        while (finished < 2) {
            REQUIRE(harness.io.run_one_for(10s) > 0);
        }
        const auto arrivals = harness.simulator.stats().create_arrivals;
        REQUIRE(arrivals.size() == 3);
        CHECK(arrivals[1] - arrivals[0] >= 190ms);
        CHECK(arrivals[2] - arrivals[0] >= 190ms);
    }
}
