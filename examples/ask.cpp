// ask: submit one question as an async job, wait for the answer, print it with its citations and cost.
//
//   PERPLEXITY_API_KEY=... ask "How many stars are in the Milky Way?"
//   ask --base-url https://127.0.0.1:8443 --ca-file ca.pem "..."   (e.g. against perplexity-sim)
//
// Exit codes: 0 the job completed, 1 the job FAILED, 2 bad usage or configuration, 3 any other error
// (network, TLS, HTTP status, unexpected body), 4 the deadline passed with the job still running,
// 5 interrupted (Ctrl-C) while waiting.
#include "example_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
namespace px = perplexity;

namespace {

enum ExitCode {
    completed = 0,
    job_failed = 1,
    usage_error = 2,
    other_error = 3,
    timed_out = 4,
    interrupted = 5
};

constexpr std::string_view usage = R"(usage: ask [options] QUESTION...

Submits QUESTION as an async chat completion job, polls it until it ends, and prints the answer, its
citations and its cost.

options:
  --model NAME           model to use (default: sonar-deep-research)
  --deadline SECONDS     give up waiting after this long (default: 1800); the job may still complete
  --json                 print the final job as JSON instead of text
  --show-thinking        also print the model's <think> block
)";

constexpr std::string_view usage_tail = R"(  -h, --help             show this help

Progress (status changes, retries) goes to stderr. Ctrl-C (SIGINT) or SIGTERM cancels the wait; the
job keeps running on the API and its id is printed.

exit codes: 0 completed, 1 job failed (its error message is printed), 2 usage or configuration error
            (including no API key), 3 other error (network, TLS, HTTP status, unexpected body),
            4 deadline passed (the job is still running; its id is printed), 5 interrupted
)";

struct Arguments {
    examples::ConnectionFlags connection{};
    std::string model = "sonar-deep-research";
    std::chrono::seconds deadline{1800};
    bool json = false;
    bool show_thinking = false;
    std::string question{};
};

std::optional<Arguments> parse_arguments(int argc, char** argv) {
    Arguments arguments;
    examples::Flags flags("ask", argc, argv);
    while (flags.next()) {
        const std::string_view word = flags.word();
        bool bad = false;
        if (examples::parse_common_flag(flags, arguments.connection, usage, usage_tail, completed, bad)) {
            // handled
        } else if (word == "--model") {
            const auto model = flags.value();
            bad = !model;
            arguments.model = model.value_or("");
        } else if (word == "--deadline") {
            const auto seconds = flags.number(1);
            bad = !seconds;
            arguments.deadline = std::chrono::seconds(seconds.value_or(1));
        } else if (word == "--json") {
            arguments.json = true;
        } else if (word == "--show-thinking") {
            arguments.show_thinking = true;
        } else if (word.starts_with("--")) {
            flags.unknown();
            return std::nullopt;
        } else {
            arguments.question += arguments.question.empty() ? "" : " ";
            arguments.question += word;
        }
        if (bad) {
            return std::nullopt;
        }
    }
    if (arguments.question.empty()) {
        std::cerr << "ask: no question given\n";
        return std::nullopt;
    }
    return arguments;
}

void print_answer(const px::Job& job, bool show_thinking) {
    const px::ChatCompletion& answer = *job.response;
    const std::string text = answer.text();
    const auto [thinking, reply] = px::split_thinking(text);
    if (show_thinking && !thinking.empty()) {
        std::cout << "--- thinking ---\n" << thinking << "\n--- answer ---\n";
    }
    std::cout << reply << "\n";
    if (!answer.citations.empty()) {
        std::cout << "\nCitations:\n";
        for (std::size_t i = 0; i < answer.citations.size(); ++i) {
            std::cout << "  [" << i + 1 << "] " << answer.citations[i] << "\n";
        }
    }
    if (answer.usage) {
        std::cout << "\nTokens: " << answer.usage->total_tokens << " total (" << answer.usage->prompt_tokens
                  << " prompt, " << answer.usage->completion_tokens << " completion)";
        if (answer.usage->cost) {
            std::cout << ", cost: $" << answer.usage->cost->total_cost;
        }
        std::cout << "\n";
    }
}

void print_progress(const px::ProgressEvent& event) {
    using Kind = px::ProgressEvent::Kind;
    switch (event.kind) {
        case Kind::created:
        case Kind::status_changed:
            std::cerr << "job " << event.job_id << " " << event.job->status_text << "\n";
            break;
        case Kind::retry_scheduled:
            std::cerr << "retrying in " << event.delay.count() << " ms after: " << *event.error << "\n";
            break;
        case Kind::polled:
        case Kind::sleeping:
            break;
    }
}

asio::awaitable<int> ask(px::Client& client, const Arguments& arguments) {
    px::ChatRequest request{.model = arguments.model,
                            .messages = {{.role = "user", .content = arguments.question}}};
    px::PollPolicy poll = client.options().poll;  // --poll-interval is already in it
    poll.deadline = arguments.deadline;
    auto job = co_await client.run(request, {.poll = poll, .on_progress = print_progress});
    if (!job) {
        const px::Error& error = job.error();
        if (error.kind == px::ErrorKind::job_failed) {
            if (arguments.json && error.job) {
                std::cout << boost::json::serialize(boost::json::value_from(*error.job)) << "\n";
            }
            std::cerr << "ask: job " << error.job_id.value_or("?")
                      << " failed: " << (error.api_message.empty() ? "(no error message)" : error.api_message)
                      << "\n";
            co_return job_failed;
        }
        std::cerr << "ask: " << error << "\n";
        if (error.kind == px::ErrorKind::wait_deadline) {
            co_return timed_out;
        }
        co_return error.kind == px::ErrorKind::cancelled ? interrupted : other_error;
    }
    if (arguments.json) {
        std::cout << boost::json::serialize(boost::json::value_from(*job)) << "\n";
    } else if (job->response) {
        print_answer(*job, arguments.show_thinking);
    } else {
        std::cerr << "ask: job " << job->id << " completed without a response\n";
        co_return other_error;
    }
    co_return completed;
}

}  // namespace

int main(int argc, char** argv) {
    const auto arguments = parse_arguments(argc, argv);
    if (!arguments) {
        std::cerr << "run 'ask --help' for usage\n";
        return usage_error;
    }
    asio::io_context io;
    px::Client client(io.get_executor(), arguments->connection.client_options());
    if (!examples::usable("ask", client)) {
        return usage_error;
    }
    int exit_code = other_error;
    // Ctrl-C cancels the wait; the error then names the job, which keeps running on the server.
    asio::cancellation_signal interrupt;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) {
            interrupt.emit(asio::cancellation_type::terminal);
        }
    });
    asio::co_spawn(io, ask(client, *arguments),
                   asio::bind_cancellation_slot(interrupt.slot(), [&](std::exception_ptr error, int code) {
                       signals.cancel();
                       if (error) {
                           try {
                               std::rethrow_exception(error);
                           } catch (const std::exception& e) {
                               std::cerr << "ask: " << e.what() << "\n";
                           }
                           return;
                       }
                       exit_code = code;
                   }));
    io.run();
    return exit_code;
}
