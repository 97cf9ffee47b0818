// What the example programs share: reading flags, and turning them into ClientOptions and a PollPolicy.
// Deliberately small; each program keeps its own usage text and exit codes.
#pragma once

#include <perplexity/async.hpp>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace examples {

namespace px = perplexity;

/// Walks argv. Each `value()` or number reader reports its own problem on stderr, prefixed with the
/// program's name, and returns nullopt, so a parser can stop at the first bad flag.
class Flags {
  public:
    Flags(std::string_view program, int argc, char** argv)
        : program_(program), words_(argv + 1, argv + argc) {}

    bool next() { return ++index_ < words_.size(); }
    std::string_view word() const { return words_[index_]; }

    std::optional<std::string> value() {
        if (index_ + 1 >= words_.size()) {
            std::cerr << program_ << ": " << word() << " needs a value\n";
            return std::nullopt;
        }
        return std::string(words_[++index_]);
    }

    /// A whole number in [minimum, maximum].
    std::optional<long> number(long minimum, long maximum = 1L << 40) {
        const std::string_view flag = word();
        const auto text = value();
        if (!text) {
            return std::nullopt;
        }
        long parsed = 0;
        const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), parsed);
        if (text->empty() || ec != std::errc{} || end != text->data() + text->size() || parsed < minimum ||
            parsed > maximum) {
            std::cerr << program_ << ": " << flag << " takes a whole number from " << minimum
                      << (maximum == (1L << 40) ? std::string(" up") : " to " + std::to_string(maximum))
                      << ", not '" << *text << "'\n";
            return std::nullopt;
        }
        return parsed;
    }

    void unknown() const { complain("unknown option " + std::string(word())); }

    /// Says what is wrong on stderr, prefixed with the program's name.
    void complain(std::string_view problem) const { std::cerr << program_ << ": " << problem << "\n"; }

  private:
    std::string_view program_;
    std::vector<std::string_view> words_;
    std::size_t index_ = static_cast<std::size_t>(-1);
};

/// The flags every example understands, applied over the environment.
struct ConnectionFlags {
    std::optional<std::string> base_url{};
    std::optional<std::string> ca_file{};
    std::optional<std::chrono::milliseconds> poll_interval{};

    /// Handles the flag under the cursor if it is one of these. Returns false when it is not; sets
    /// `bad` when it is but its value is unusable.
    bool parse(Flags& flags, bool& bad) {
        const std::string_view word = flags.word();
        if (word == "--base-url") {
            bad = !(base_url = flags.value());
        } else if (word == "--ca-file") {
            bad = !(ca_file = flags.value());
        } else if (word == "--poll-interval") {
            const auto milliseconds = flags.number(0);
            bad = !milliseconds;
            if (milliseconds) {
                poll_interval = std::chrono::milliseconds(*milliseconds);
            }
        } else {
            return false;
        }
        return true;
    }

    /// `options_from_environment()` first, so every variable it reads applies, then the flags.
    px::ClientOptions client_options() const {
        px::ClientOptions options = px::options_from_environment();
        if (base_url) {
            options.base_url = *base_url;
        }
        if (ca_file) {
            options.ca_file = *ca_file;
        }
        if (poll_interval) {
            options.poll.backoff.initial = options.poll.backoff.max = *poll_interval;
            options.poll.backoff.jitter = 0;
        }
        return options;
    }
};

inline constexpr std::string_view connection_flags_help =
    R"(  --base-url URL         API base URL (default: $PERPLEXITY_BASE_URL, else https://api.perplexity.ai)
  --ca-file FILE         trust the certificate authorities in FILE instead of the system store
  --poll-interval MS     fixed time between polls in milliseconds (default: growing from 1 s to 15 s)
)";

inline constexpr std::string_view environment_help =
    R"(environment:
  PERPLEXITY_API_KEY     the API key (required)
  PERPLEXITY_BASE_URL    the API base URL, overridden by --base-url
  PERPLEXITY_LOG         info or debug: log requests, retries and status changes to stderr (key redacted)
)";

/// Handles what every example accepts: the connection flags, and -h/--help, which prints `usage`, the
/// shared flag and environment help and `usage_tail`, then exits with `help_exit`. Returns whether the
/// flag under the cursor was one of these; sets `bad` when its value is unusable.
inline bool parse_common_flag(Flags& flags, ConnectionFlags& connection, std::string_view usage,
                              std::string_view usage_tail, int help_exit, bool& bad) {
    if (connection.parse(flags, bad)) {
        return true;
    }
    if (flags.word() == "-h" || flags.word() == "--help") {
        std::cout << usage << connection_flags_help << usage_tail << "\n" << environment_help;
        std::exit(help_exit);
    }
    return false;
}

/// Checks what a Client would refuse, with a hint for the commonest mistake. Prints and returns false
/// when the options are unusable.
inline bool usable(std::string_view program, const px::Client& client) {
    if (client.options().api_key.empty()) {
        std::cerr << program
                  << ": PERPLEXITY_API_KEY is not set. Export your API key, or point --base-url at a local "
                     "perplexity-sim and set PERPLEXITY_API_KEY to its key.\n";
        return false;
    }
    if (const auto& problem = client.configuration_error()) {
        std::cerr << program << ": " << *problem << "\n";
        return false;
    }
    return true;
}

/// The answer of a completed job without its <think> block.
inline std::string answer_of(const px::Job& job) {
    if (!job.response) {
        return {};
    }
    const std::string text = job.response->text();
    return std::string(px::split_thinking(text).answer);
}

inline px::ChatRequest question_request(std::string model, std::string question) {
    return px::ChatRequest{.model = std::move(model),
                           .messages = {{.role = "user", .content = std::move(question)}}};
}

/// The answer of an Agent API response (its `output_text` parts) without a <think> block.
inline std::string answer_of(const px::Response& response) {
    const std::string text = response.output_text();
    return std::string(px::split_thinking(text).answer);
}

/// An Agent API request for one question: with `model` when one is given, else with `preset` (by
/// default "medium", the API's deep-research preset). A bare model has no tools, while a Sonar model
/// always searches the web: it is offered the web_search tool, so that its answer has sources. A preset
/// brings its own tools, which are left as the preset has them.
inline px::ResponseRequest agent_request(const std::optional<std::string>& model,
                                         const std::optional<std::string>& preset, std::string question) {
    px::ResponseRequest request{.input = std::move(question)};
    if (model) {
        request.model = model;
        request.tools.emplace_back(px::WebSearchTool{});
    } else {
        request.preset = preset.value_or("medium");
    }
    return request;
}

/// An ended Sonar ledger entry as the outcome its run had: the job, or the job_failed Error of a FAILED
/// one, as Client::run returned them.
inline px::expected<px::Job, px::Error> recorded_job(const px::LedgerEntry& entry) {
    auto job = px::parse_job(entry.result);
    if (job && job->status == px::JobStatus::failed) {
        return px::unexpected(px::Error{.kind = px::ErrorKind::job_failed,
                                        .message = entry.error,
                                        .api_message = job->error_message.value_or(""),
                                        .job_id = job->id,
                                        .job = std::make_shared<const px::Job>(*job)});
    }
    return job;
}

/// An ended Agent API ledger entry as the outcome its run had: the response, or the Error of a failed
/// or cancelled one, as Client::run_response returned them.
inline px::expected<px::Response, px::Error> recorded_response(const px::LedgerEntry& entry) {
    auto response = px::parse_response(entry.result);
    if (response && (response->status == px::ResponseStatus::failed ||
                     response->status == px::ResponseStatus::cancelled)) {
        return px::unexpected(px::Error{
            .kind = response->status == px::ResponseStatus::failed ? px::ErrorKind::job_failed
                                                                   : px::ErrorKind::response_cancelled,
            .message = entry.error,
            .api_message = response->error ? response->error->message : std::string(),
            .job_id = response->id,
            .response = std::make_shared<const px::Response>(*response)});
    }
    return response;
}

/// Which API a program asks, and what runs there: `--api sonar|agent`, `--model` and `--preset`.
struct ApiFlags {
    /// --api agent: Agent API background responses; otherwise Sonar async jobs.
    bool agent = false;
    std::optional<std::string> model{};
    std::optional<std::string> preset{};

    /// Handles the flag under the cursor if it is one of these. Returns false when it is not; sets
    /// `bad` when it is but its value is unusable.
    bool parse(Flags& flags, bool& bad) {
        const std::string_view word = flags.word();
        if (word == "--api") {
            const auto api = flags.value();
            bad = !api || (*api != "sonar" && *api != "agent");
            if (api && bad) {
                flags.complain("--api takes sonar or agent, not '" + *api + "'");
            }
            agent = api == "agent";
        } else if (word == "--model" || word == "--preset") {
            const auto value = flags.value();
            bad = !value;
            (word == "--model" ? model : preset) = value;
        } else {
            return false;
        }
        return true;
    }

    /// Whether the flags go together (the Sonar API has no presets); says why not on stderr.
    bool consistent(std::string_view program) const {
        if (preset && !agent) {
            std::cerr << program << ": --preset needs --api agent\n";
            return false;
        }
        return true;
    }

    /// The Sonar request for `question`: --model, by default sonar-deep-research.
    px::ChatRequest sonar_request(std::string question) const {
        return question_request(model.value_or("sonar-deep-research"), std::move(question));
    }

    /// The Agent API request for `question` (see `agent_request`).
    px::ResponseRequest agent_request(std::string question) const {
        return examples::agent_request(model, preset, std::move(question));
    }
};

}  // namespace examples
