// ask: submit one question as an async job, wait for the answer, print it with its citations and cost.
//
//   PERPLEXITY_API_KEY=... ask "How many stars are in the Milky Way?"
//   ask --base-url https://127.0.0.1:8443 --ca-file ca.pem "..."   (e.g. against perplexity-sim)
//
// Exit codes: 0 the job completed, 1 the job FAILED, 2 bad usage or configuration, 3 any other error
// (network, TLS, HTTP status, unexpected body).
#include <perplexity/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
namespace px = perplexity;

namespace {

enum ExitCode { completed = 0, job_failed = 1, usage_error = 2, other_error = 3 };

constexpr std::string_view usage = R"(usage: ask [options] QUESTION...

Submits QUESTION as an async chat completion job, polls it until it ends, and prints the answer, its
citations and its cost.

options:
  --base-url URL       API base URL (default: $PERPLEXITY_BASE_URL or https://api.perplexity.ai)
  --ca-file FILE       trust the certificate authorities in FILE instead of the system store
  --model NAME         model to use (default: sonar-deep-research)
  --poll-interval MS   time between polls in milliseconds (default: 2000)
  --json               print the final job as JSON instead of text
  --show-thinking      also print the model's <think> block
  -h, --help           show this help

The API key is read from $PERPLEXITY_API_KEY.
exit codes: 0 completed, 1 job failed, 2 usage or configuration error, 3 other error
)";

struct Arguments {
    std::optional<std::string> base_url;
    std::optional<std::string> ca_file;
    std::string model = "sonar-deep-research";
    std::chrono::milliseconds poll_interval{2000};
    bool json = false;
    bool show_thinking = false;
    std::string question;
};

std::optional<Arguments> parse_arguments(int argc, char** argv) {
    Arguments arguments;
    std::vector<std::string_view> words(argv + 1, argv + argc);
    for (std::size_t i = 0; i < words.size(); ++i) {
        const std::string_view word = words[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= words.size()) {
                std::cerr << "ask: " << word << " needs a value\n";
                return std::nullopt;
            }
            return std::string(words[++i]);
        };
        if (word == "-h" || word == "--help") {
            std::cout << usage;
            std::exit(completed);
        } else if (word == "--base-url") {
            if (!(arguments.base_url = value())) {
                return std::nullopt;
            }
        } else if (word == "--ca-file") {
            if (!(arguments.ca_file = value())) {
                return std::nullopt;
            }
        } else if (word == "--model") {
            auto model = value();
            if (!model) {
                return std::nullopt;
            }
            arguments.model = *model;
        } else if (word == "--poll-interval") {
            auto interval = value();
            char* end = nullptr;
            const long milliseconds = interval ? std::strtol(interval->c_str(), &end, 10) : -1;
            if (!interval || *end != '\0' || milliseconds < 0) {
                std::cerr << "ask: --poll-interval takes a number of milliseconds\n";
                return std::nullopt;
            }
            arguments.poll_interval = std::chrono::milliseconds(milliseconds);
        } else if (word == "--json") {
            arguments.json = true;
        } else if (word == "--show-thinking") {
            arguments.show_thinking = true;
        } else if (word.starts_with("--")) {
            std::cerr << "ask: unknown option " << word << "\n";
            return std::nullopt;
        } else {
            arguments.question += arguments.question.empty() ? "" : " ";
            arguments.question += word;
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

// A fixed-interval poll, enough for a demo; the library's own waiting machinery is `Client::wait`.
asio::awaitable<int> ask(px::Client& client, const Arguments& arguments) {
    px::ChatRequest request{.model = arguments.model,
                            .messages = {{.role = "user", .content = arguments.question}}};
    auto job = co_await client.create(request);
    if (!job) {
        std::cerr << "ask: could not create the job: " << job.error() << "\n";
        co_return other_error;
    }
    std::cerr << "job " << job->id << " " << px::to_string(job->status) << "\n";
    asio::steady_timer timer(co_await asio::this_coro::executor);
    px::JobStatus last_status = job->status;
    while (!job->is_final()) {
        timer.expires_after(arguments.poll_interval);
        co_await timer.async_wait(asio::use_awaitable);
        const std::string id = job->id;
        job = co_await client.get(id);
        if (!job) {
            std::cerr << "ask: polling job " << id << " failed: " << job.error() << "\n";
            co_return other_error;
        }
        if (job->status != last_status) {
            std::cerr << "job " << job->id << " " << job->status_text << "\n";
            last_status = job->status;
        }
    }
    if (arguments.json) {
        std::cout << boost::json::serialize(boost::json::value_from(*job)) << "\n";
    }
    if (job->status == px::JobStatus::failed) {
        std::cerr << "ask: job " << job->id
                  << " failed: " << job->error_message.value_or("(no error message)") << "\n";
        co_return job_failed;
    }
    if (!job->response) {
        std::cerr << "ask: job " << job->id << " completed without a response\n";
        co_return other_error;
    }
    if (!arguments.json) {
        print_answer(*job, arguments.show_thinking);
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
    px::ClientOptions options = px::options_from_environment();
    if (arguments->base_url) {
        options.base_url = *arguments->base_url;
    }
    if (arguments->ca_file) {
        options.ca_file = *arguments->ca_file;
    }
    if (options.api_key.empty()) {
        std::cerr
            << "ask: PERPLEXITY_API_KEY is not set. Export your API key, or point --base-url at a local "
               "perplexity-sim and set PERPLEXITY_API_KEY to its key (examples/run-ask does both).\n";
        return usage_error;
    }

    asio::io_context io;
    px::Client client(io.get_executor(), options);
    if (const auto& problem = client.configuration_error()) {
        std::cerr << "ask: " << *problem << "\n";
        return usage_error;
    }
    int exit_code = other_error;
    asio::co_spawn(io, ask(client, *arguments), [&](std::exception_ptr error, int code) {
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& e) {
                std::cerr << "ask: " << e.what() << "\n";
            }
            return;
        }
        exit_code = code;
    });
    io.run();
    return exit_code;
}
