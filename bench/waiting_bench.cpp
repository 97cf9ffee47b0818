// Scenario 2 of bench/run: many jobs waiting at once on one thread. Creates `jobs` jobs with
// Client::run, each then polled every `interval` (with 20% jitter) until its deadline of `seconds`
// passes (the simulator is told never to finish them), and reports the memory this costs beyond an idle
// client.
//
//   perplexity-bench-waiting --base-url URL --ca-file FILE --api-key KEY --jobs N --interval-ms MS
//                            --seconds S [--connections C]
//
// Prints one JSON line: {"name":"waiting","jobs":N,...,"rss_per_job_bytes":B}.
#include "bench_flags.hpp"

#include <perplexity/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
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
    std::size_t interval_ms = 0;
    std::size_t seconds = 0;
    std::size_t connections = 0;
};

Arguments parse(int argc, char** argv) {
    const bench::Flags flags = bench::parse_flags(
        argc, argv, "perplexity-bench-waiting", "--jobs N --interval-ms MS --seconds S [--connections C]",
        {{"--jobs", 10000}, {"--interval-ms", 1000}, {"--seconds", 30}, {"--connections", 16}});
    return Arguments{
        .base_url = flags.base_url,
        .ca_file = flags.ca_file,
        .api_key = flags.api_key,
        .jobs = flags.count("--jobs"),
        .interval_ms = flags.count("--interval-ms"),
        .seconds = flags.count("--seconds"),
        .connections = flags.count("--connections"),
    };
}

/// Resident memory now, from /proc (getrusage only knows the peak).
std::size_t current_rss_kb() {
    std::ifstream statm("/proc/self/statm");
    std::size_t pages = 0;
    std::size_t resident = 0;
    statm >> pages >> resident;
    return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) / 1024;
}

/// Bytes the allocator has handed out and not got back: the jobs' own memory, without what the
/// allocator keeps from earlier peaks.
std::size_t heap_in_use() {
    return ::mallinfo2().uordblks;
}

std::size_t peak_rss_kb() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::size_t>(usage.ru_maxrss);
}

struct Tally {
    std::size_t created = 0;
    std::size_t waiting = 0;
    std::size_t most_waiting = 0;
    std::size_t polls = 0;
    std::size_t deadline_passed = 0;
    std::size_t other_errors = 0;
    std::size_t rss_at_most_waiting_kb = 0;
    std::size_t heap_at_most_waiting = 0;
};

asio::awaitable<void> one_job(px::Client& client, std::size_t index, const px::WaitOptions& options,
                              Tally& tally) {
    px::ChatRequest request{
        .model = "sonar-deep-research",
        .messages = {{.role = "user", .content = "waiting job " + std::to_string(index)}}};
    auto result = co_await client.run(std::move(request), options);
    --tally.waiting;
    if (!result && result.error().kind == px::ErrorKind::wait_deadline) {
        ++tally.deadline_passed;
    } else {
        ++tally.other_errors;
        if (!result && tally.other_errors <= 3) {
            std::cerr << result.error() << '\n';
        }
    }
}

/// Samples resident memory while every job is waiting: the figure that matters, free of the start-up
/// burst of creates.
asio::awaitable<void> sample(Tally& tally, std::size_t jobs, std::chrono::seconds until) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    const auto end = std::chrono::steady_clock::now() + until;
    while (std::chrono::steady_clock::now() < end && (tally.created < jobs || tally.waiting > 0)) {
        timer.expires_after(std::chrono::milliseconds(250));
        co_await timer.async_wait(asio::use_awaitable);
        if (tally.created == jobs && tally.waiting == jobs) {
            tally.rss_at_most_waiting_kb = std::max(tally.rss_at_most_waiting_kb, current_rss_kb());
            tally.heap_at_most_waiting = std::max(tally.heap_at_most_waiting, heap_in_use());
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
    options.poll = {.backoff = {.initial = std::chrono::milliseconds(arguments.interval_ms),
                                .growth = 1.0,
                                .max = std::chrono::milliseconds(arguments.interval_ms),
                                .jitter = 0.2},
                    .deadline = std::chrono::seconds(arguments.seconds)};
    px::Client client(io.get_executor(), options);
    if (client.configuration_error()) {
        std::cerr << *client.configuration_error() << '\n';
        return 2;
    }

    // An idle client: configured, connected once, nothing in flight.
    bool listed = false;
    asio::co_spawn(io, client.list(1), [&](std::exception_ptr, px::expected<px::JobPage, px::Error> page) {
        listed = page.has_value();
        if (!page) {
            std::cerr << page.error() << '\n';
        }
    });
    io.run();
    if (!listed) {
        return 1;
    }
    const std::size_t idle_client_rss_kb = current_rss_kb();
    const std::size_t idle_client_heap = heap_in_use();

    Tally tally;
    px::WaitOptions wait;
    wait.on_created = [&tally](const px::Job&) {
        ++tally.created;
        ++tally.waiting;
        tally.most_waiting = std::max(tally.most_waiting, tally.waiting);
    };
    wait.on_progress = [&tally](const px::ProgressEvent& event) {
        tally.polls += event.kind == px::ProgressEvent::Kind::polled;
    };
    for (std::size_t i = 0; i < arguments.jobs; ++i) {
        asio::co_spawn(io, one_job(client, i, wait, tally), asio::detached);
    }
    asio::co_spawn(io, sample(tally, arguments.jobs, std::chrono::seconds(arguments.seconds)),
                   asio::detached);
    io.restart();
    io.run();

    const std::size_t waiting_rss_kb = tally.rss_at_most_waiting_kb;
    const double per_job_bytes = waiting_rss_kb > idle_client_rss_kb
                                     ? static_cast<double>(waiting_rss_kb - idle_client_rss_kb) * 1024.0 /
                                           static_cast<double>(arguments.jobs)
                                     : 0.0;
    std::printf(
        "{\"name\":\"waiting\",\"jobs\":%zu,\"seconds\":%zu,\"interval_ms\":%zu,\"created\":%zu,"
        "\"most_waiting\":%zu,\"polls\":%zu,\"deadline_passed\":%zu,\"other_errors\":%zu,"
        "\"idle_client_rss_kb\":%zu,\"waiting_rss_kb\":%zu,\"peak_rss_kb\":%zu,\"rss_per_job_bytes\":%.0f,"
        "\"heap_per_job_bytes\":%.0f}\n",
        arguments.jobs, arguments.seconds, arguments.interval_ms, tally.created, tally.most_waiting,
        tally.polls, tally.deadline_passed, tally.other_errors, idle_client_rss_kb, waiting_rss_kb,
        peak_rss_kb(), per_job_bytes,
        static_cast<double>(tally.heap_at_most_waiting -
                            std::min(tally.heap_at_most_waiting, idle_client_heap)) /
            static_cast<double>(arguments.jobs));
    return tally.other_errors == 0 && tally.deadline_passed == arguments.jobs ? 0 : 1;
}
