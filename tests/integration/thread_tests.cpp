// Many clients on one io_context run by four threads, each client on its own strand: the setup the
// Client's threading rules ask for. CI runs this under ThreadSanitizer.
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using test::question;

namespace {

/// The simulator on a thread of its own, so the clients' threads share nothing with it but sockets.
class SimulatorThread {
  public:
    explicit SimulatorThread(perplexity_sim::SimulatorOptions options)
        : simulator_(io_.get_executor(), std::move(options)) {
        simulator_.start();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~SimulatorThread() {
        asio::post(io_, [this] { simulator_.stop(); });
        thread_.join();
    }

    px::ClientOptions client_options() const {
        px::ClientOptions options = test::options_for(simulator_);
        options.poll = {.backoff = {.initial = 2ms, .growth = 1.0, .max = 2ms, .jitter = 0.5},
                        .deadline = 60s};
        return options;
    }

    /// Read once the clients are done; the simulator's own thread is still running, so ask it.
    perplexity_sim::SimulatorStats stats() {
        std::promise<perplexity_sim::SimulatorStats> promise;
        asio::post(io_, [&] { promise.set_value(simulator_.stats()); });
        return promise.get_future().get();
    }

  private:
    asio::io_context io_;
    perplexity_sim::Simulator simulator_;
    std::thread thread_;
};

struct Tally {
    std::atomic<std::size_t> completed{0};
    std::atomic<std::size_t> failed{0};
    std::atomic<std::size_t> listed{0};
    std::mutex mutex;
    std::vector<std::string> errors;

    void failure(const px::Error& error) {
        ++failed;
        std::lock_guard lock(mutex);
        errors.push_back(px::to_string(error));
    }
};

asio::awaitable<void> run_one(px::Client& client, Tally& tally, std::string text) {
    auto job = co_await client.run(question(std::move(text)));
    if (!job) {
        tally.failure(job.error());
        co_return;
    }
    // Read back through the same client, from whichever thread the strand runs on now.
    auto fetched = co_await client.get(job->id);
    if (fetched && fetched->status == px::JobStatus::completed && fetched->id == job->id) {
        ++tally.completed;
    } else {
        tally.failure(fetched ? px::Error{.message = "the job read back differs"} : fetched.error());
    }
}

asio::awaitable<void> list_once(px::Client& client, Tally& tally) {
    auto page = co_await client.list(10);
    if (page) {
        ++tally.listed;
    } else {
        tally.failure(page.error());
    }
}

}  // namespace

TEST_SUITE("threads") {
    TEST_CASE("jobs run from four threads, a strand per client, all complete") {
        constexpr std::size_t clients = 8;
        constexpr std::size_t jobs_per_client = 12;
        SimulatorThread simulator({.created_polls = 2, .in_progress_polls = 2});

        asio::io_context io(4);
        std::vector<std::unique_ptr<px::Client>> pool;
        for (std::size_t i = 0; i < clients; ++i) {
            pool.push_back(std::make_unique<px::Client>(asio::make_strand(io), simulator.client_options()));
        }
        Tally tally;
        for (std::size_t c = 0; c < clients; ++c) {
            px::Client& client = *pool[c];
            for (std::size_t j = 0; j < jobs_per_client; ++j) {
                asio::co_spawn(
                    client.get_executor(),
                    run_one(client, tally, "client " + std::to_string(c) + " job " + std::to_string(j)),
                    asio::detached);
            }
            asio::co_spawn(client.get_executor(), list_once(client, tally), asio::detached);
        }
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&io] { io.run(); });
        }
        for (auto& thread : threads) {
            thread.join();
        }

        for (const auto& error : tally.errors) {
            MESSAGE(error);
        }
        CHECK(tally.failed == 0);
        CHECK(tally.completed == clients * jobs_per_client);
        CHECK(tally.listed == clients);
        CHECK(simulator.stats().jobs_created == clients * jobs_per_client);
        for (const auto& client : pool) {
            // Connections went back to each client's own pool, never to another's: at most one for
            // each operation that ran at once.
            CHECK(client->idle_connection_count() >= 1);
            CHECK(client->idle_connection_count() <= jobs_per_client + 1);
        }
    }

    TEST_CASE("a cancellation from another thread reaches the operation through its strand") {
        SimulatorThread simulator({.created_polls = 1000000});
        asio::io_context io(4);
        px::Client client(asio::make_strand(io), simulator.client_options());
        asio::cancellation_signal signal;
        std::optional<px::expected<px::Job, px::Error>> result;
        std::atomic<bool> created{false};
        px::WaitOptions options;
        options.on_created = [&](const px::Job&) { created = true; };
        asio::co_spawn(client.get_executor(), client.run(question("never finishes"), options),
                       asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr, auto job) {
                           result.emplace(std::move(job));
                       }));
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&io] { io.run(); });
        }
        // Wait until the job exists, then cancel from this thread, through the client's strand, as
        // the Client's threading rules require.
        while (!created) {
            std::this_thread::sleep_for(1ms);
        }
        asio::post(client.get_executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
        for (auto& thread : threads) {
            thread.join();
        }
        REQUIRE(result.has_value());
        REQUIRE_FALSE(result->has_value());
        CHECK(result->error().kind == px::ErrorKind::cancelled);
        CHECK(result->error().job_id.has_value());
    }
}
