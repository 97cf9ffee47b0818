// The connection pool: a maximum number of connections, a fair queue when all are busy, idle
// connections closed after a timeout without keeping io_context::run from returning.
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>

#include <thread>

using namespace std::chrono_literals;
using test::question;

namespace {

/// Runs the io_context until `done()` holds; the limit only turns a hang into a failure.
template <class Done>
void run_until(asio::io_context& io, Done done, std::chrono::seconds limit = 60s) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < give_up) {
        io.restart();
        io.run_one_for(100ms);
    }
    REQUIRE_MESSAGE(done(), "the operations did not finish within " << limit.count() << " s");
}

px::ClientOptions quick_polls(px::ClientOptions options) {
    options.poll = {.backoff = {.initial = 1ms, .growth = 1.0, .max = 1ms, .jitter = 0}, .deadline = 30s};
    return options;
}

}  // namespace

TEST_SUITE("connection pool") {
    TEST_CASE("never more than max_connections open, and every job still completes") {
        test::Harness harness({.created_polls = 2, .in_progress_polls = 2});
        px::ClientOptions options = quick_polls(harness.client_options());
        options.max_connections = 2;
        px::Client client(harness.io.get_executor(), options);

        constexpr int jobs = 8;
        int completed = 0;
        int finished = 0;
        std::size_t most_open = 0;
        px::WaitOptions wait;
        wait.on_progress = [&](const px::ProgressEvent&) {
            most_open = std::max(most_open, client.open_connection_count());
        };
        for (int i = 0; i < jobs; ++i) {
            asio::co_spawn(harness.io, client.run(question("job " + std::to_string(i)), wait),
                           [&](std::exception_ptr, px::expected<px::Job, px::Error> job) {
                               ++finished;
                               completed += job && job->status == px::JobStatus::completed;
                           });
        }
        run_until(harness.io, [&] { return finished == jobs; });
        CHECK(completed == jobs);
        CHECK(most_open <= 2);
        CHECK(client.open_connection_count() <= 2);
        CHECK(harness.simulator.stats().connections_accepted <= 2);
        CHECK(harness.simulator.stats().jobs_created == jobs);
    }

    TEST_CASE("requests that find every connection busy are served in arrival order") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.max_connections = 1;
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.create(question("q")));
        REQUIRE(job);

        // A, B and C queue up at once; D arrives the moment A finishes, when B and C are still
        // waiting. A fair pool serves D last: the connection A gives back goes to B, not to the
        // newcomer.
        std::vector<std::string> order;
        auto record = [&](std::string name) {
            return [&order, name](std::exception_ptr, px::expected<px::Job, px::Error> result) {
                order.push_back(name + (result ? "" : " failed"));
            };
        };
        asio::co_spawn(harness.io, client.get(job->id),
                       [&](std::exception_ptr error, px::expected<px::Job, px::Error> result) {
                           record("A")(error, std::move(result));
                           asio::co_spawn(harness.io, client.get(job->id), record("D"));
                       });
        asio::co_spawn(harness.io, client.get(job->id), record("B"));
        asio::co_spawn(harness.io, client.get(job->id), record("C"));
        run_until(harness.io, [&] { return order.size() == 4; });
        CHECK(order == std::vector<std::string>{"A", "B", "C", "D"});
        CHECK(harness.simulator.stats().connections_accepted == 1);
    }

    TEST_CASE("idle connections are closed after the idle timeout while operations are in progress") {
        // The job stays CREATED for four polls 100 ms apart: with a 20 ms idle timeout the connection
        // is closed during every sleep, so each poll opens its own; with the default, one serves all.
        for (const auto idle_timeout : {20ms, 30000ms}) {
            CAPTURE(idle_timeout.count());
            test::Harness harness({.created_polls = 4});
            px::ClientOptions options = harness.client_options();
            options.idle_connection_timeout = idle_timeout;
            options.poll = {.backoff = {.initial = 100ms, .growth = 1.0, .max = 100ms, .jitter = 0},
                            .deadline = 30s};
            px::Client client(harness.io.get_executor(), options);
            auto job = harness.run(client.run(question("q")));
            REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
            const auto stats = harness.simulator.stats();
            CHECK(stats.gets_received >= 4);
            if (idle_timeout == 20ms) {
                CHECK(stats.connections_accepted == 1 + stats.gets_received);
            } else {
                CHECK(stats.connections_accepted == 1);
            }
        }
    }

    TEST_CASE("with nothing in progress, idle connections do not keep io_context::run busy") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.idle_connection_timeout = 20ms;
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.create(question("q")));
        REQUIRE(job);
        REQUIRE(client.idle_connection_count() == 1);

        // Only the simulator's accept loop is left, so stop it first: run must then return at once,
        // with the client's connection still idle and no timer of the client's pending.
        harness.simulator.stop();
        harness.io.restart();
        harness.io.run_for(10s);
        CHECK(harness.io.stopped());
        CHECK(client.idle_connection_count() == 1);
    }

    TEST_CASE("a connection idle past the timeout is closed when the next operation starts") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.idle_connection_timeout = 20ms;
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.create(question("q")));
        REQUIRE(job);
        REQUIRE(client.idle_connection_count() == 1);
        // Time passing with no operation in progress, so no timer of the client's is involved.
        std::this_thread::sleep_for(40ms);
        auto fetched = harness.run(client.get(job->id));
        REQUIRE(fetched);
        CHECK(harness.simulator.stats().connections_accepted == 2);
        CHECK(client.open_connection_count() == 1);
    }

    TEST_CASE("a request waiting for a connection can be cancelled, and the client stays usable") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.max_connections = 1;
        options.request_timeout = 500ms;
        options.retry.max_attempts = 1;
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.create(question("q")));
        REQUIRE(job);

        // The only connection is held by a request the server never answers.
        harness.simulator.inject(
            {.operation = perplexity_sim::Operation::get, .action = perplexity_sim::Fault::Action::stall});
        std::optional<px::expected<px::Job, px::Error>> stalled;
        std::optional<px::expected<px::Job, px::Error>> queued;
        asio::cancellation_signal cancel;
        asio::co_spawn(
            harness.io, client.get(job->id),
            [&](std::exception_ptr, px::expected<px::Job, px::Error> result) { stalled = result; });
        asio::co_spawn(harness.io, client.get(job->id),
                       asio::bind_cancellation_slot(
                           cancel.slot(), [&](std::exception_ptr, px::expected<px::Job, px::Error> result) {
                               queued = result;
                           }));
        asio::steady_timer soon(harness.io, 50ms);
        soon.async_wait([&](boost::system::error_code) { cancel.emit(asio::cancellation_type::terminal); });
        run_until(harness.io, [&] { return queued.has_value(); });
        REQUIRE_FALSE(queued->has_value());
        CHECK(queued->error().kind == px::ErrorKind::cancelled);
        CHECK(queued->error().message.find("waiting for a free connection") != std::string::npos);
        CHECK_FALSE(stalled.has_value());

        run_until(harness.io, [&] { return stalled.has_value(); });
        REQUIRE_FALSE(stalled->has_value());
        CHECK(stalled->error().kind == px::ErrorKind::timeout);
        auto after = harness.run(client.get(job->id));
        CHECK_MESSAGE(after.has_value(), px::to_string(after.error()));
        CHECK(client.open_connection_count() == 1);
    }

    TEST_CASE("max_connections of 0 is refused") {
        asio::io_context io;
        px::Client client(
            io.get_executor(),
            {.base_url = "http://127.0.0.1:1", .api_key = test::secret_key, .max_connections = 0});
        REQUIRE(client.configuration_error());
        CHECK(client.configuration_error()->message.find("max_connections") != std::string::npos);
    }
}
