// Contender 1 of bench/run: this library. N jobs, each created and polled to COMPLETED with
// Client::run, by C workers on one thread sharing one Client limited to C connections, polling without
// sleeping so that what is measured is the client's own cost.
//
//   perplexity-bench-library --base-url URL --ca-file FILE --api-key KEY --jobs N --polls K --connections C
//                            [--ledger FILE [--durability power_loss|process_crash]]
//
// Prints one JSON line: {"name":"perplexity-async","requests":R,"completed":N,"failed":F}. With --ledger
// (bench/run ledger), the runs are recorded in a fresh SqliteLedger at FILE, and the line adds
// "ledger_ms": the wall time the io_context's thread spent inside the ledger's calls.
#include "bench_flags.hpp"

#include <perplexity/async.hpp>
#include <perplexity/sqlite_ledger.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace px = perplexity;

namespace {

struct Arguments {
    std::string base_url{};
    std::string ca_file{};
    std::string api_key{};
    std::size_t jobs = 0;
    std::size_t polls = 0;
    std::size_t connections = 0;
    std::string ledger{};
    std::string durability{};
};

Arguments parse(int argc, char** argv) {
    const bench::Flags flags =
        bench::parse_flags(argc, argv, "perplexity-bench-library", "--jobs N --polls K --connections C",
                           {{"--jobs", 2000}, {"--polls", 5}, {"--connections", 32}},
                           {{"--ledger", ""}, {"--durability", "power_loss"}});
    return Arguments{
        .base_url = flags.base_url,
        .ca_file = flags.ca_file,
        .api_key = flags.api_key,
        .jobs = flags.count("--jobs"),
        .polls = flags.count("--polls"),
        .connections = flags.count("--connections"),
        .ledger = flags.text("--ledger"),
        .durability = flags.text("--durability"),
    };
}

/// A Ledger that adds up the wall time spent inside another's calls: the time the io_context's thread is
/// held by them, since SqliteLedger's calls are synchronous.
class TimedLedger final : public px::Ledger {
  public:
    explicit TimedLedger(std::shared_ptr<px::Ledger> inner) : inner_(std::move(inner)) {}

    asio::awaitable<px::expected<px::EntryId, px::Error>> add(px::LedgerIntent intent) override {
        const auto started = std::chrono::steady_clock::now();
        auto added = co_await inner_->add(std::move(intent));
        spent_ += std::chrono::steady_clock::now() - started;
        co_return added;
    }

    asio::awaitable<std::optional<px::Error>> update(px::EntryId entry, px::LedgerUpdate update) override {
        const auto started = std::chrono::steady_clock::now();
        auto failed = co_await inner_->update(entry, std::move(update));
        spent_ += std::chrono::steady_clock::now() - started;
        co_return failed;
    }

    asio::awaitable<px::expected<std::vector<px::LedgerEntry>, px::Error>> find(
        px::LedgerQuery query) override {
        return inner_->find(std::move(query));
    }

    std::chrono::steady_clock::duration spent() const { return spent_; }

  private:
    std::shared_ptr<px::Ledger> inner_;
    std::chrono::steady_clock::duration spent_{};
};

struct Tally {
    std::size_t next_job = 0;
    std::size_t requests = 0;
    std::size_t completed = 0;
    std::size_t failed = 0;
};

asio::awaitable<void> worker(px::Client& client, const Arguments& arguments, Tally& tally) {
    px::WaitOptions options;
    // Every poll is a request; the create is the other one.
    options.on_progress = [&tally](const px::ProgressEvent& event) {
        tally.requests += event.kind == px::ProgressEvent::Kind::polled;
    };
    while (tally.next_job < arguments.jobs) {
        const std::size_t job = tally.next_job++;
        px::ChatRequest request{
            .model = "sonar-deep-research",
            .messages = {{.role = "user", .content = "benchmark question " + std::to_string(job)}}};
        auto result = co_await client.run(std::move(request), options);
        ++tally.requests;
        if (result && result->status == px::JobStatus::completed) {
            ++tally.completed;
        } else {
            ++tally.failed;
            if (!result && tally.failed <= 3) {
                std::cerr << result.error() << '\n';
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const Arguments arguments = parse(argc, argv);
    asio::io_context io(1);
    px::ClientOptions options;
    options.base_url = arguments.base_url;
    options.api_key = arguments.api_key;
    options.ca_file = arguments.ca_file;
    options.max_connections = arguments.connections;
    // No sleeping between polls: the point is the client's cost per request, not the job's pace.
    options.poll = {.backoff = {.initial = std::chrono::milliseconds(0),
                                .growth = 1.0,
                                .max = std::chrono::milliseconds(0),
                                .jitter = 0},
                    .deadline = std::chrono::hours(1)};
    std::shared_ptr<TimedLedger> ledger;
    if (!arguments.ledger.empty()) {
        const auto durability = arguments.durability == "process_crash" ? px::LedgerDurability::process_crash
                                                                        : px::LedgerDurability::power_loss;
        auto opened = px::SqliteLedger::open(arguments.ledger, {.durability = durability});
        if (!opened) {
            std::cerr << opened.error() << '\n';
            return 2;
        }
        ledger = std::make_shared<TimedLedger>(*opened);
        options.ledger = ledger;
    }
    px::Client client(io.get_executor(), options);
    if (client.configuration_error()) {
        std::cerr << *client.configuration_error() << '\n';
        return 2;
    }
    Tally tally;
    for (std::size_t i = 0; i < arguments.connections; ++i) {
        asio::co_spawn(io, worker(client, arguments, tally), asio::detached);
    }
    io.run();
    const double ledger_ms =
        ledger ? std::chrono::duration<double, std::milli>(ledger->spent()).count() : 0.0;
    std::printf(
        "{\"name\":\"perplexity-async\",\"requests\":%zu,\"completed\":%zu,\"failed\":%zu,\"ledger_ms\":%.3f}"
        "\n",
        tally.requests, tally.completed, tally.failed, ledger_ms);
    return tally.failed == 0 ? 0 : 1;
}
