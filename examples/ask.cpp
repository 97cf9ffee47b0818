// ask: submit one question as an async job, wait for the answer, print it with its citations and cost.
// Either API: a Sonar async chat completion job (the default, Client::run), or with --api agent a
// background response of the Agent API (Client::run_response), with a preset (default "medium") or a
// model.
//
//   PERPLEXITY_API_KEY=... ask "How many stars are in the Milky Way?"
//   PERPLEXITY_API_KEY=... ask --api agent --preset high "How many stars are in the Milky Way?"
//   ask --base-url https://127.0.0.1:8443 --ca-file ca.pem "..."   (e.g. against perplexity-sim)
//
// When a Sonar create fails in a way that may have left a job behind (its answer was lost), ask prints
// the command that picks that job up: the same one with --idempotency-key and the key the create used.
//
// Exit codes: 0 the job completed (Agent API: also a response that ended `incomplete`, whose partial
// answer is printed with a warning on stderr), 1 the job FAILED, 2 bad usage or configuration, 3 any
// other error (network, TLS, HTTP status, unexpected body), 4 the deadline passed with the job still
// running, 5 interrupted (Ctrl-C) while waiting, 6 Agent API: the response was cancelled on the server
// by someone else (a cancel request made with the same API key), 7 Agent API: the response ended
// `requires_action` (the model called a function tool; ask offers none, so only a model that brings
// tools of its own can; the pending calls are printed).
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
    interrupted = 5,
    cancelled_on_server = 6,
    requires_action = 7
};

constexpr std::string_view usage = R"(usage: ask [options] QUESTION...

Submits QUESTION as an async job, polls it until it ends, and prints the answer, its citations and its
cost. The job is a Sonar async chat completion (--api sonar, the default) or an Agent API background
response (--api agent).

options:
  --api sonar|agent      which API to ask (default: sonar)
  --model NAME           model to use (sonar default: sonar-deep-research; with --api agent, a
                         provider-prefixed model such as perplexity/sonar, used instead of the preset)
  --preset NAME          --api agent: the preset to run (default: medium, the deep-research preset)
  --cancel-on-abandon    --api agent: when Ctrl-C or the deadline ends the wait, also cancel the
                         response on the server (otherwise it keeps running, and costing)
  --deadline SECONDS     give up waiting after this long (default: 1800); the job may still complete
  --json                 print the final job (or response) as JSON instead of text
  --show-thinking        also print the <think> block that reasoning models such as sonar-deep-research
                         write before their answer (hidden by default)
  --idempotency-key KEY  --api sonar: the key of the create (default: a new one each run); when a create
                         fails and its job may exist, ask prints the command that picks the job up by it
)";

constexpr std::string_view usage_tail = R"(  -h, --help             show this help

Progress (status changes, retries) goes to stderr. Ctrl-C (SIGINT) or SIGTERM cancels the wait; the
job keeps running on the API and its id is printed (with --api agent --cancel-on-abandon, the response
is cancelled on the server too).

exit codes: 0 completed (with --api agent, also a response that ended incomplete: its partial answer is
            printed, with a warning on stderr), 1 job failed (its error message is printed), 2 usage or
            configuration error (including no API key), 3 other error (network, TLS, HTTP status,
            unexpected body), 4 deadline passed (the job is still running, unless cancelled by
            --cancel-on-abandon; its id is printed), 5 interrupted, 6 --api agent: the response was
            cancelled on the server by someone else, 7 --api agent: the response requires action (the
            model called a function tool; the pending calls are printed)
)";

struct Arguments {
    examples::ConnectionFlags connection{};
    examples::ApiFlags api{};
    bool cancel_on_abandon = false;
    std::chrono::seconds deadline{1800};
    bool json = false;
    bool show_thinking = false;
    std::optional<std::string> idempotency_key{};
    std::string question{};
    // As typed, for the command ask suggests running again.
    std::vector<std::string> command_line{};
};

std::optional<Arguments> parse_arguments(int argc, char** argv) {
    Arguments arguments;
    arguments.command_line.assign(argv, argv + argc);
    examples::Flags flags("ask", argc, argv);
    while (flags.next()) {
        const std::string_view word = flags.word();
        bool bad = false;
        if (examples::parse_common_flag(flags, arguments.connection, usage, usage_tail, completed, bad)) {
            // handled
        } else if (arguments.api.parse(flags, bad)) {
            // handled
        } else if (word == "--cancel-on-abandon") {
            arguments.cancel_on_abandon = true;
        } else if (word == "--deadline") {
            const auto seconds = flags.number(1);
            bad = !seconds;
            arguments.deadline = std::chrono::seconds(seconds.value_or(1));
        } else if (word == "--json") {
            arguments.json = true;
        } else if (word == "--show-thinking") {
            arguments.show_thinking = true;
        } else if (word == "--idempotency-key") {
            arguments.idempotency_key = flags.value();
            bad = !arguments.idempotency_key;
            if (arguments.idempotency_key && arguments.idempotency_key->empty()) {
                flags.complain("--idempotency-key needs a key that is not empty");
                bad = true;
            }
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
    if (!arguments.api.consistent("ask")) {
        return std::nullopt;
    }
    if (arguments.api.agent && arguments.idempotency_key) {
        // Said here rather than ignored: a user relying on the key to pick a lost run up could not.
        std::cerr << "ask: --idempotency-key needs --api sonar: the Agent API has no idempotency keys, so "
                     "a response whose create was lost cannot be picked up\n";
        return std::nullopt;
    }
    if (!arguments.api.agent && arguments.cancel_on_abandon) {
        // The Sonar API has no cancel.
        std::cerr << "ask: --cancel-on-abandon needs --api agent\n";
        return std::nullopt;
    }
    if (arguments.question.empty()) {
        std::cerr << "ask: no question given\n";
        return std::nullopt;
    }
    return arguments;
}

void print_text(const std::string& text, bool show_thinking) {
    const auto [thinking, reply] = px::split_thinking(text);
    if (show_thinking && !thinking.empty()) {
        std::cout << "--- thinking ---\n" << thinking << "\n--- answer ---\n";
    }
    std::cout << reply << "\n";
}

void print_answer(const px::Job& job, bool show_thinking) {
    const px::ChatCompletion& answer = *job.response;
    print_text(answer.text(), show_thinking);
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

/// The Agent API's answer: the text of its message items, then the search results behind it (where the
/// citations of this API live), then the usage.
void print_answer(const px::Response& response, bool show_thinking) {
    print_text(response.output_text(), show_thinking);
    const std::vector<const px::SearchResult*> sources = response.search_results();
    if (!sources.empty()) {
        std::cout << "\nSources:\n";
        for (std::size_t i = 0; i < sources.size(); ++i) {
            std::cout << "  [" << i + 1 << "] " << sources[i]->url;
            if (!sources[i]->title.empty()) {
                std::cout << " (" << sources[i]->title << ")";
            }
            std::cout << "\n";
        }
    }
    if (response.usage) {
        const px::ResponseUsage& usage = *response.usage;
        std::cout << "\nTokens: " << usage.total_tokens << " total (" << usage.input_tokens << " input, "
                  << usage.output_tokens << " output)";
        if (usage.cost) {
            std::cout << ", cost: " << (usage.cost->currency == "USD" ? "$" : usage.cost->currency + " ")
                      << usage.cost->total_cost;
        }
        std::cout << "\n";
    }
}

void print_progress(const px::ProgressEvent& event) {
    using Kind = px::ProgressEvent::Kind;
    switch (event.kind) {
        case Kind::created:
            // A status_changed event for the same answer follows, and prints its status.
            break;
        case Kind::status_changed:
            // A wait on a job sets `job`, a wait on an Agent API response sets `response`.
            if (event.response != nullptr) {
                std::cerr << "response " << event.job_id << " " << event.response->status_text << "\n";
            } else if (event.job != nullptr) {
                std::cerr << "job " << event.job_id << " " << event.job->status_text << "\n";
            }
            break;
        case Kind::retry_scheduled:
            std::cerr << "retrying in " << event.delay.count() << " ms after: " << *event.error << "\n";
            break;
        case Kind::polled:
        case Kind::sleeping:
            break;
    }
}

/// `word` as a POSIX shell reads it back: quoted unless it is made of characters no shell treats specially.
std::string shell_quoted(std::string_view word) {
    constexpr std::string_view plain =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./_-";
    if (!word.empty() && word.find_first_not_of(plain) == std::string_view::npos) {
        return std::string(word);
    }
    std::string quoted = "'";
    for (const char c : word) {
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return quoted + "'";
}

/// The library's message names WaitOptions::idempotency_key, which is right for a C++ caller; a shell
/// user needs the flag instead, so this prints the command line that passes it, ready to paste.
void print_pick_up_hint(const Arguments& arguments, const std::string& key) {
    std::cerr << "ask: to pick up the job if it was created, run again with --idempotency-key "
              << shell_quoted(key) << ":\n ";
    const std::vector<std::string>& words = arguments.command_line;
    for (std::size_t i = 0; i < words.size(); ++i) {
        std::cerr << " " << shell_quoted(words[i]);
        if (i == 0 && !arguments.idempotency_key) {
            std::cerr << " --idempotency-key " << shell_quoted(key);
        }
    }
    std::cerr << "\n";
}

/// The exit code of the errors both APIs share, after printing the error.
int report_error(const px::Error& error) {
    std::cerr << "ask: " << error << "\n";
    if (error.kind == px::ErrorKind::wait_deadline) {
        return timed_out;
    }
    return error.kind == px::ErrorKind::cancelled ? interrupted : other_error;
}

asio::awaitable<int> ask_sonar(px::Client& client, const Arguments& arguments, px::PollPolicy poll) {
    const px::ChatRequest request = arguments.api.sonar_request(arguments.question);
    // Named rather than a braced temporary in the co_await: GCC 12 destroys such a temporary twice.
    const px::WaitOptions options{
        .poll = poll, .on_progress = print_progress, .idempotency_key = arguments.idempotency_key};
    auto job = co_await client.run(request, options);
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
        const int code = report_error(error);
        if (error.job_may_exist && error.idempotency_key) {
            print_pick_up_hint(arguments, *error.idempotency_key);
        }
        co_return code;
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

asio::awaitable<int> ask_agent(px::Client& client, const Arguments& arguments, px::PollPolicy poll) {
    px::ResponseRequest request = arguments.api.agent_request(arguments.question);
    // Named, as in ask_sonar, for GCC 12.
    const px::ResponseWaitOptions options{
        .poll = poll, .on_progress = print_progress, .cancel_on_abandon = arguments.cancel_on_abandon};
    auto response = co_await client.run_response(std::move(request), options);
    const auto print_json = [&](const px::Response& final_response) {
        if (arguments.json) {
            std::cout << boost::json::serialize(boost::json::value_from(final_response)) << "\n";
        }
    };
    if (!response) {
        const px::Error& error = response.error();
        if (error.response &&
            (error.kind == px::ErrorKind::job_failed || error.kind == px::ErrorKind::response_cancelled)) {
            print_json(*error.response);
        }
        if (error.kind == px::ErrorKind::job_failed) {
            std::cerr << "ask: response " << error.job_id.value_or("?")
                      << " failed: " << (error.api_message.empty() ? "(no error message)" : error.api_message)
                      << "\n";
            co_return job_failed;
        }
        if (error.kind == px::ErrorKind::response_cancelled) {
            std::cerr << "ask: response " << error.job_id.value_or("?") << " was cancelled on the server"
                      << (error.api_message.empty() ? "" : ": " + error.api_message) << "\n";
            co_return cancelled_on_server;
        }
        co_return report_error(error);
    }
    print_json(*response);
    switch (response->status) {
        case px::ResponseStatus::requires_action:
            // ask offers no function tools, so it has no output to send back: say what was asked for.
            std::cerr << "ask: response " << response->id
                      << " requires action: the model called function tools and waits for their output\n";
            if (!arguments.json) {
                const std::vector<const px::FunctionCall*> calls = response->function_calls();
                std::cout << "Pending function calls:" << (calls.empty() ? " (none in the response)" : "")
                          << "\n";
                for (const px::FunctionCall* call : calls) {
                    std::cout << "  " << call->name << "(" << call->arguments << ") [call_id "
                              << call->call_id << "]\n";
                }
            }
            co_return requires_action;
        case px::ResponseStatus::incomplete:
            std::cerr << "ask: response " << response->id << " is incomplete"
                      << (response->incomplete_details
                              ? " (" + boost::json::serialize(*response->incomplete_details) + ")"
                              : std::string())
                      << "; the answer below is cut short\n";
            break;
        default:
            break;
    }
    if (!arguments.json) {
        print_answer(*response, arguments.show_thinking);
    }
    co_return completed;
}

asio::awaitable<int> ask(px::Client& client, const Arguments& arguments) {
    px::PollPolicy poll = client.options().poll;  // --poll-interval is already in it
    poll.deadline = arguments.deadline;
    if (arguments.api.agent) {
        co_return co_await ask_agent(client, arguments, poll);
    }
    co_return co_await ask_sonar(client, arguments, poll);
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
    // Ctrl-C cancels the wait; the error then names the job, which keeps running on the server (unless
    // --cancel-on-abandon has the library cancel the Agent API response there too).
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
