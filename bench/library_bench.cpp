// Contender 1 of bench/run: this library. N jobs, each created and polled to COMPLETED with
// Client::run, by C workers on one thread sharing one Client limited to C connections, polling without
// sleeping so that what is measured is the client's own cost.
//
//   perplexity-bench-library --base-url URL --ca-file FILE --api-key KEY --jobs N --polls K --connections C
//
// Prints one JSON line: {"name":"perplexity-async","requests":R,"completed":N,"failed":F}.
#include <perplexity/async.hpp>

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
    std::string base_url;
    std::string ca_file;
    std::string api_key;
    std::size_t jobs = 2000;
    std::size_t polls = 5;
    std::size_t connections = 32;
};

[[noreturn]] void usage(const char* problem) {
    std::cerr << "perplexity-bench-library: " << problem
              << "\nusage: perplexity-bench-library --base-url URL --ca-file FILE --api-key KEY --jobs N"
                 " --polls K --connections C\n";
    std::exit(2);
}

Arguments parse(int argc, char** argv) {
    Arguments arguments;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) {
            usage("every flag takes a value");
        }
        const std::string value = argv[++i];
        const auto count = [&] {
            char* end = nullptr;
            const unsigned long long parsed = std::strtoull(value.c_str(), &end, 10);
            if (end == value.c_str() || *end != '\0' || parsed == 0) {
                usage("a count must be a positive integer");
            }
            return static_cast<std::size_t>(parsed);
        };
        if (flag == "--base-url") {
            arguments.base_url = value;
        } else if (flag == "--ca-file") {
            arguments.ca_file = value;
        } else if (flag == "--api-key") {
            arguments.api_key = value;
        } else if (flag == "--jobs") {
            arguments.jobs = count();
        } else if (flag == "--polls") {
            arguments.polls = count();
        } else if (flag == "--connections") {
            arguments.connections = count();
        } else {
            usage("unknown flag");
        }
    }
    if (arguments.base_url.empty() || arguments.api_key.empty()) {
        usage("--base-url and --api-key are required");
    }
    return arguments;
}

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
    options.poll = {.first_delay = std::chrono::milliseconds(0),
                    .growth = 1.0,
                    .max_delay = std::chrono::milliseconds(0),
                    .jitter = 0,
                    .deadline = std::chrono::hours(1)};
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
    std::printf("{\"name\":\"perplexity-async\",\"requests\":%zu,\"completed\":%zu,\"failed\":%zu}\n",
                tally.requests, tally.completed, tally.failed);
    return tally.failed == 0 ? 0 : 1;
}
