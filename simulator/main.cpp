// perplexity-sim: runs the simulator as a standalone server for demos and scripted tests.
//
// The first line on stdout is always "listening on <base-url>", flushed at once, because scripts block on
// it before they start their client.
#include <perplexity_sim/simulator.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

constexpr int usage_error = 2;

void print_usage(std::ostream& out) {
    out << "usage: perplexity-sim [options]\n"
           "\n"
           "Serves a stateful simulation of Perplexity's async APIs: the Sonar async chat completions\n"
           "(/async/chat/completions, /v1/async/sonar) and the Agent API's background responses\n"
           "(/v1/responses: create, retrieve, cancel; /v1/agent is an alias of create). Both share the\n"
           "lifecycle options; CREATED/IN_PROGRESS stand for queued/in_progress on the Agent side.\n"
           "\n"
           "  --port N                     port to listen on, 0 picks a free one (default 0)\n"
           "  --bind ADDR                  address to listen on (default 127.0.0.1)\n"
           "  --api-key KEY                bearer token clients must send (default sim-key)\n"
           "  --cert-dir DIR               where ca.pem is written, created if missing (default .)\n"
           "  --http                       serve plain HTTP instead of HTTPS\n"
           "  --created-ms N               minimum time a job stays CREATED (default 0)\n"
           "  --in-progress-ms N           minimum time a job stays IN_PROGRESS (default 0)\n"
           "  --created-polls N            GET answers showing CREATED before a job starts (default 1)\n"
           "  --in-progress-polls N        GET answers showing IN_PROGRESS before a job ends (default 1)\n"
           "  --failure-ratio X            share of jobs that fail, 0..1 (default 0)\n"
           "  --seed N                     seed of the simulator's randomness (default 1)\n"
           "  --fault-ratio X              share of requests that misbehave, 0..1, drawn from the seed:\n"
           "                               the answer is lost after the server acted (a create makes\n"
           "                               its job), a 503, or a 429 with retry-after-ms of 1 to 5 ms\n"
           "                               (default 0)\n"
           "  --fault OPERATION:ACTION[:N] misbehave on the next N requests (default 1) of OPERATION (any,\n"
           "                               create, get, list, create_response, retrieve_response or\n"
           "                               cancel_response): ACTION is drop_handled (act, then close\n"
           "                               without answering: a create makes its job), drop_unhandled\n"
           "                               (close without acting), stall (never answer) or an HTTP status\n"
           "                               (answered with the API's error body); repeatable, taken in order\n"
           "  --cancel-polls N             Agent API: retrieves after a cancel that still show the running\n"
           "                               status before cancelled, 0 = the next one shows it (default 0)\n"
           "  --answer-bytes N             pad each answer with filler to N bytes, e.g. for benchmarks\n"
           "                               (default: no padding, a few sentences with citations)\n"
           "  --default-page-size N        list page size without a limit (default 20)\n"
           "  --max-page-size N            largest accepted list limit (default 100)\n"
           "  --requests-per-connection N  silently close a connection after N responses, 0 = never\n"
           "                               (default 0)\n"
           "  --tier T                     enforce the create rate limit of usage tier T, 0..5: 5, 10,\n"
           "                               20, 40, 60 or 100 creates per minute (default: no limit)\n"
           "  --creates-per-minute N       enforce a create rate limit of any N > 0 a minute, e.g. 600\n"
           "                               for fast tests (default: no limit). Either option counts\n"
           "                               Sonar and Agent API creates per API key in one leaky bucket\n"
           "                               draining at the rate; a create that would overflow it gets a\n"
           "                               429 with retry-after and retry-after-ms and does nothing\n"
           "  --create-burst N             that bucket's capacity in creates, 1..1000000 (default 2).\n"
           "                               1 admits a create only a full interval after the last one,\n"
           "                               so a client pacing at exactly the rate is refused for a\n"
           "                               millisecond of network jitter; 2 absorbs that jitter and\n"
           "                               still refuses a client that gets more than one create\n"
           "                               ahead of the rate\n"
           "  --help                       show this text\n"
           "\n"
           "GET /sim/stats (no key needed; not counted as a request, never faulted) answers the\n"
           "counters as JSON: jobs_created, creates_received, creates_rate_limited, admitted_creates,\n"
           "admitted_create_span_ms (first to last admitted create), creates_per_minute and more.\n";
}

struct UsageError {
    std::string message;
};

template <class Number>
Number parse_number(std::string_view flag, std::string_view text) {
    Number value{};
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end) {
        throw UsageError{std::string(flag) + ": not a valid number: '" + std::string(text) + "'"};
    }
    return value;
}

// "OPERATION:ACTION[:COUNT]" as COUNT faults, which Simulator::inject queues in order.
std::vector<perplexity_sim::Fault> parse_fault(std::string_view text) {
    using perplexity_sim::Fault;
    using perplexity_sim::Operation;
    const auto bad = [&](std::string_view why) {
        return UsageError{"--fault: " + std::string(why) + " in '" + std::string(text) + "'"};
    };
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        throw bad("no ACTION");
    }
    const std::string_view operation_name = text.substr(0, colon);
    std::string_view action_name = text.substr(colon + 1);
    unsigned count = 1;
    if (const auto second = action_name.find(':'); second != std::string_view::npos) {
        count = parse_number<unsigned>("--fault", action_name.substr(second + 1));
        action_name = action_name.substr(0, second);
    }
    static constexpr std::pair<std::string_view, Operation> operations[] = {
        {"any", Operation::any},
        {"create", Operation::create},
        {"get", Operation::get},
        {"list", Operation::list},
        {"create_response", Operation::create_response},
        {"retrieve_response", Operation::retrieve_response},
        {"cancel_response", Operation::cancel_response}};
    Fault fault;
    bool known = false;
    for (const auto& [name, operation] : operations) {
        if (name == operation_name) {
            fault.operation = operation;
            known = true;
        }
    }
    if (!known) {
        throw bad("unknown OPERATION '" + std::string(operation_name) + "'");
    }
    if (action_name == "drop_handled") {
        fault.action = Fault::Action::drop_handled;
    } else if (action_name == "drop_unhandled") {
        fault.action = Fault::Action::drop_unhandled;
    } else if (action_name == "stall") {
        fault.action = Fault::Action::stall;
    } else if (!action_name.empty() &&
               action_name.find_first_not_of("0123456789") == std::string_view::npos &&
               action_name.size() == 3 && action_name[0] >= '1' && action_name[0] <= '5') {
        fault.action = Fault::Action::respond;
        fault.status = parse_number<unsigned>("--fault", action_name);
    } else {
        throw bad("ACTION is neither drop_handled, drop_unhandled, stall nor an HTTP status");
    }
    return std::vector<Fault>(count, fault);
}

struct CommandLine {
    perplexity_sim::SimulatorOptions options;
    std::optional<unsigned> tier;
    std::optional<unsigned> creates_per_minute;
    std::optional<unsigned> create_burst;
    std::vector<perplexity_sim::Fault> faults;
    std::filesystem::path cert_dir = ".";
    bool help = false;
};

// --tier, --creates-per-minute and --create-burst into SimulatorOptions, each checked.
void apply_create_limit(CommandLine& line) {
    using perplexity_sim::creates_per_minute_by_tier;
    if (line.tier && line.creates_per_minute) {
        throw UsageError{"--tier and --creates-per-minute both set the create rate limit: give one"};
    }
    if (line.tier) {
        if (*line.tier >= creates_per_minute_by_tier.size()) {
            throw UsageError{"--tier must be 0 to 5"};
        }
        line.options.creates_per_minute = creates_per_minute_by_tier[*line.tier];
    }
    if (line.creates_per_minute) {
        if (*line.creates_per_minute == 0) {
            throw UsageError{"--creates-per-minute must be positive (leave it out for no limit)"};
        }
        line.options.creates_per_minute = *line.creates_per_minute;
    }
    if (line.create_burst) {
        if (line.options.creates_per_minute == 0) {
            throw UsageError{"--create-burst needs --tier or --creates-per-minute"};
        }
        if (*line.create_burst < 1 ||
            *line.create_burst > perplexity_sim::detail::CreateBucket::max_capacity) {
            throw UsageError{"--create-burst must be 1 to 1000000"};
        }
        line.options.create_burst = *line.create_burst;
    }
}

CommandLine parse_command_line(int argc, char** argv) {
    CommandLine line;
    auto& options = line.options;
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view flag = args[i];
        std::optional<std::string_view> inline_value;
        if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
            inline_value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
        }
        auto value = [&]() -> std::string_view {
            if (inline_value) {
                return *inline_value;
            }
            if (i + 1 >= args.size()) {
                throw UsageError{std::string(flag) + " needs a value"};
            }
            return args[++i];
        };
        auto no_value = [&] {
            if (inline_value) {
                throw UsageError{std::string(flag) + " takes no value"};
            }
        };

        if (flag == "--help" || flag == "-h") {
            no_value();
            line.help = true;
        } else if (flag == "--http") {
            no_value();
            options.https = false;
        } else if (flag == "--port") {
            options.port = parse_number<std::uint16_t>(flag, value());
        } else if (flag == "--bind") {
            options.bind_address = std::string(value());
        } else if (flag == "--api-key") {
            options.api_key = std::string(value());
        } else if (flag == "--cert-dir") {
            line.cert_dir = std::string(value());
        } else if (flag == "--created-ms") {
            options.created_for = std::chrono::milliseconds(parse_number<std::uint32_t>(flag, value()));
        } else if (flag == "--in-progress-ms") {
            options.in_progress_for = std::chrono::milliseconds(parse_number<std::uint32_t>(flag, value()));
        } else if (flag == "--created-polls") {
            options.created_polls = parse_number<unsigned>(flag, value());
        } else if (flag == "--in-progress-polls") {
            options.in_progress_polls = parse_number<unsigned>(flag, value());
        } else if (flag == "--failure-ratio") {
            options.failure_ratio = parse_number<double>(flag, value());
            if (!(options.failure_ratio >= 0.0 && options.failure_ratio <= 1.0)) {
                throw UsageError{"--failure-ratio must be between 0 and 1"};
            }
        } else if (flag == "--fault-ratio") {
            options.fault_ratio = parse_number<double>(flag, value());
            if (!(options.fault_ratio >= 0.0 && options.fault_ratio <= 1.0)) {
                throw UsageError{"--fault-ratio must be between 0 and 1"};
            }
        } else if (flag == "--seed") {
            options.seed = parse_number<std::uint64_t>(flag, value());
        } else if (flag == "--fault") {
            for (auto& fault : parse_fault(value())) {
                line.faults.push_back(std::move(fault));
            }
        } else if (flag == "--cancel-polls") {
            options.cancel_polls = parse_number<unsigned>(flag, value());
        } else if (flag == "--answer-bytes") {
            options.answer_bytes = parse_number<std::size_t>(flag, value());
        } else if (flag == "--default-page-size") {
            options.default_page_size = parse_number<std::size_t>(flag, value());
        } else if (flag == "--max-page-size") {
            options.max_page_size = parse_number<std::size_t>(flag, value());
        } else if (flag == "--requests-per-connection") {
            options.requests_per_connection = parse_number<unsigned>(flag, value());
        } else if (flag == "--tier") {
            line.tier = parse_number<unsigned>(flag, value());
        } else if (flag == "--creates-per-minute") {
            line.creates_per_minute = parse_number<unsigned>(flag, value());
        } else if (flag == "--create-burst") {
            line.create_burst = parse_number<unsigned>(flag, value());
        } else {
            throw UsageError{"unknown argument: " + std::string(flag)};
        }
    }
    if (options.default_page_size < 1 || options.max_page_size < 1 ||
        options.default_page_size > options.max_page_size) {
        throw UsageError{"page sizes must satisfy 1 <= --default-page-size <= --max-page-size"};
    }
    apply_create_limit(line);
    return line;
}

void write_ca(const std::filesystem::path& dir, const std::string& pem) {
    std::filesystem::create_directories(dir);
    const auto path = dir / "ca.pem";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << pem;
    out.close();
    if (!out) {
        throw std::runtime_error("cannot write " + path.string());
    }
}

}  // namespace

int main(int argc, char** argv) {
    CommandLine line;
    try {
        line = parse_command_line(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "perplexity-sim: " << e.message << "\n\n";
        print_usage(std::cerr);
        return usage_error;
    }
    if (line.help) {
        print_usage(std::cout);
        return EXIT_SUCCESS;
    }

    try {
        boost::asio::io_context io;
        perplexity_sim::Simulator simulator(io.get_executor(), line.options);
        for (auto& fault : line.faults) {
            simulator.inject(std::move(fault));
        }
        // Installed before the announcement: a script may signal the moment it has read the first line, and
        // a background job started by a non-interactive shell would otherwise inherit an ignored SIGINT.
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code& ec, int) {
            if (!ec) {
                simulator.stop();
            }
        });
        simulator.start();
        if (line.options.https) {
            // Written before the announcement, so a script may use it the moment it reads the first line.
            write_ca(line.cert_dir, simulator.ca_certificate_pem());
        }
        std::cout << "listening on " << simulator.base_url() << std::endl;
        if (line.options.https) {
            std::cerr << "perplexity-sim: CA certificate in " << (line.cert_dir / "ca.pem").string() << '\n';
        }

        io.run();

        // Scripts read the counts, e.g. to check that a resumed client created no job twice.
        const auto stats = simulator.stats();
        std::cerr << "perplexity-sim: stopped after " << stats.connections_accepted << " connections, "
                  << stats.requests << " requests, " << stats.jobs_created << " jobs, "
                  << stats.creates_received << " creates received, " << stats.responses_created
                  << " responses, " << stats.response_creates_received << " response creates received, "
                  << stats.responses_cancelled << " responses cancelled, " << stats.creates_rate_limited
                  << " creates refused by the tier, " << stats.admitted_creates
                  << " creates admitted spanning " << stats.admitted_create_span().count() << " ms, "
                  << stats.faults_applied << " faults\n";
        return EXIT_SUCCESS;
    } catch (const std::exception& e) {
        std::cerr << "perplexity-sim: " << e.what() << '\n';
        return EXIT_FAILURE;
    }
}
