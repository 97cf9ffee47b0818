// crash_worker: the program tests/crash_test.sh kills with SIGKILL at random moments. It answers the
// labels job-1..job-N, each with one line "LABEL JOB_ID" in --out, using a Client with a SqliteLedger;
// started again after a kill, it carries on from the ledger and the output, so that in the end every label
// is answered exactly once and the simulator has made exactly N jobs.
//
//   crash_worker --base-url URL --ca-file FILE --ledger FILE --out FILE --jobs N [--concurrency C]
//                [--api-key KEY]
//   crash_worker --ledger FILE --report
//
// The key comes from --api-key or PERPLEXITY_API_KEY. --report prints the ledger's entries per state
// ("completed 20", one line each) and the number of distinct labels, and changes nothing.
//
// Exit codes: 0 every label answered (or the report printed), 1 some label still unanswered, 2 usage,
// 3 the ledger cannot be opened or read, 4 the output cannot be read or written, 5 anything else.
#include <perplexity/async.hpp>
#include <perplexity/sqlite_ledger.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace px = perplexity;
namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr int exit_unanswered = 1;
constexpr int exit_usage = 2;
constexpr int exit_ledger = 3;
constexpr int exit_output = 4;
constexpr int exit_other = 5;

// Thrown to leave main with an exit code and a message; nothing is caught on the way.
struct Exit {
    int code;
    std::string message;
};

struct Settings {
    std::string base_url;
    std::string ca_file;
    std::string ledger;
    std::string out;
    std::string api_key;
    unsigned jobs = 0;
    unsigned concurrency = 4;
    bool report = false;
};

unsigned parse_count(std::string_view flag, std::string_view text) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value == 0) {
        throw Exit{exit_usage, std::string(flag) + ": not a positive number: '" + std::string(text) + "'"};
    }
    return value;
}

Settings parse_command_line(int argc, char** argv) {
    Settings settings;
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view flag = args[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= args.size()) {
                throw Exit{exit_usage, std::string(flag) + " needs a value"};
            }
            return std::string(args[++i]);
        };
        if (flag == "--base-url") {
            settings.base_url = value();
        } else if (flag == "--ca-file") {
            settings.ca_file = value();
        } else if (flag == "--ledger") {
            settings.ledger = value();
        } else if (flag == "--out") {
            settings.out = value();
        } else if (flag == "--api-key") {
            settings.api_key = value();
        } else if (flag == "--jobs") {
            settings.jobs = parse_count(flag, value());
        } else if (flag == "--concurrency") {
            settings.concurrency = parse_count(flag, value());
        } else if (flag == "--report") {
            settings.report = true;
        } else {
            throw Exit{exit_usage, "unknown argument: " + std::string(flag)};
        }
    }
    if (settings.ledger.empty()) {
        throw Exit{exit_usage, "--ledger is required"};
    }
    if (settings.report) {
        return settings;
    }
    if (settings.api_key.empty()) {
        if (const char* key = std::getenv("PERPLEXITY_API_KEY")) {
            settings.api_key = key;
        }
    }
    if (settings.base_url.empty() || settings.out.empty() || settings.jobs == 0 || settings.api_key.empty()) {
        throw Exit{exit_usage,
                   "--base-url, --out, --jobs and an API key (--api-key or PERPLEXITY_API_KEY) are "
                   "required"};
    }
    return settings;
}

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

// Writes happen inside the Client's handlers, which must not throw; and going on after a line failed to
// reach the disk would count an answer that is not there.
[[noreturn]] void fail_output(const std::string& message) {
    std::cerr << "crash_worker: " << message << std::endl;
    std::_Exit(exit_output);
}

// The answers file. A line counts once it is on disk: each is one write() of the whole line, then
// fdatasync, so a kill leaves the file with whole lines only (a write() to a regular file is not torn by a
// signal) and the next start sees every line that counted.
class Answers {
  public:
    explicit Answers(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            throw Exit{exit_output, errno_text("cannot open " + path)};
        }
        read_existing();
    }
    Answers(const Answers&) = delete;
    Answers& operator=(const Answers&) = delete;
    ~Answers() { ::close(fd_); }

    bool answered(const std::string& label) const { return labels_.contains(label); }
    std::size_t count() const { return labels_.size(); }

    // A label already answered is not written again: the ledger and the Client may both report one
    // outcome (a resumed wait, then the sweep of the ledger), and a restart re-reads what counted.
    void write(const std::string& label, std::string_view job_id, bool failed) {
        if (answered(label)) {
            return;
        }
        std::string line = label + " " + std::string(job_id.empty() ? "-" : job_id);
        if (failed) {
            line += " FAILED";
        }
        line += '\n';
        const ssize_t written = ::write(fd_, line.data(), line.size());
        if (written != static_cast<ssize_t>(line.size())) {
            fail_output(written < 0 ? errno_text("cannot write to " + path_) : "short write to " + path_);
        }
        if (::fdatasync(fd_) != 0) {
            fail_output(errno_text("cannot fdatasync " + path_));
        }
        labels_.insert(label);
    }

  private:
    void read_existing() {
        std::string text;
        char chunk[4096];
        for (;;) {
            const ssize_t got = ::pread(fd_, chunk, sizeof chunk, static_cast<off_t>(text.size()));
            if (got < 0) {
                throw Exit{exit_output, errno_text("cannot read " + path_)};
            }
            if (got == 0) {
                break;
            }
            text.append(chunk, static_cast<std::size_t>(got));
        }
        // A line without its newline never counted (its fdatasync cannot have returned); cut it off so that
        // the next line does not run into it.
        const std::size_t whole = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if (whole != text.size()) {
            std::cerr << "crash_worker: cutting an unfinished last line off " << path_ << '\n';
            if (::ftruncate(fd_, static_cast<off_t>(whole)) != 0) {
                throw Exit{exit_output, errno_text("cannot truncate " + path_)};
            }
            text.resize(whole);
        }
        std::size_t at = 0;
        while (at < text.size()) {
            const std::size_t end = text.find('\n', at);
            const std::string_view line(text.data() + at, end - at);
            labels_.insert(std::string(line.substr(0, line.find(' '))));
            at = end + 1;
        }
    }

    std::string path_;
    int fd_ = -1;
    std::set<std::string> labels_;
};

std::shared_ptr<px::SqliteLedger> open_ledger(const std::string& path) {
    auto ledger = px::SqliteLedger::open(path);
    if (!ledger) {
        throw Exit{exit_ledger, "cannot open the ledger: " + px::to_string(ledger.error())};
    }
    return *ledger;
}

std::vector<px::LedgerEntry> all_entries(px::SqliteLedger& ledger) {
    auto entries = ledger.find_now({});
    if (!entries) {
        throw Exit{exit_ledger, "cannot read the ledger: " + px::to_string(entries.error())};
    }
    return std::move(*entries);
}

int report(const Settings& settings) {
    const auto ledger = open_ledger(settings.ledger);
    std::map<std::string, std::size_t> per_state;
    for (const px::EntryState state :
         {px::EntryState::pending, px::EntryState::running, px::EntryState::completed, px::EntryState::failed,
          px::EntryState::dropped}) {
        per_state[px::to_string(state)] = 0;
    }
    std::set<std::string> labels;
    const auto entries = all_entries(*ledger);
    for (const auto& entry : entries) {
        ++per_state[px::to_string(entry.state)];
        labels.insert(entry.label);
    }
    for (const auto& [state, count] : per_state) {
        std::cout << state << ' ' << count << '\n';
    }
    std::cout << "entries " << entries.size() << "\nlabels " << labels.size() << '\n';
    return EXIT_SUCCESS;
}

// Outcomes the ledger holds but the output lacks: the process died between recording an outcome and
// writing its line.
void answer_from_ledger(px::SqliteLedger& ledger, Answers& answers) {
    for (const auto& entry : all_entries(ledger)) {
        if (entry.state == px::EntryState::completed || entry.state == px::EntryState::failed) {
            answers.write(entry.label, entry.job_id, entry.state == px::EntryState::failed);
        }
    }
}

void answer(Answers& answers, const std::string& label, const px::expected<px::Job, px::Error>& outcome) {
    if (outcome) {
        answers.write(label, outcome->id, false);
    } else if (outcome.error().kind == px::ErrorKind::job_failed) {
        answers.write(label, outcome.error().job_id.value_or(""), true);
    } else {
        // Left unfinished in the ledger, for the next resume.
        std::cerr << "crash_worker: " << label << ": " << px::to_string(outcome.error()) << '\n';
    }
}

asio::awaitable<void> run_labels(px::Client& client, std::deque<std::string>& todo, Answers& answers) {
    while (!todo.empty()) {
        const std::string label = std::move(todo.front());
        todo.pop_front();
        const px::ChatRequest request{.model = "sonar-deep-research",
                                      .messages = {{.role = "user", .content = "question of " + label}}};
        // Named, not a braced temporary in the co_await: GCC 12 destroys such a temporary twice.
        px::WaitOptions options;
        options.label = label;
        answer(answers, label, co_await client.run(request, std::move(options)));
    }
}

// Resumes what the ledger left unfinished, then runs the labels it has never heard of, then answers what
// the ledger holds. A round ends with a label unanswered only when a run or a resumed wait failed in a
// way that leaves its entry unfinished (retries exhausted, say); the next round resumes it.
asio::awaitable<int> work(const Settings& settings, px::Client& client, px::SqliteLedger& ledger,
                          Answers& answers) {
    constexpr int rounds = 3;
    for (int round = 0; round < rounds; ++round) {
        answer_from_ledger(ledger, answers);
        px::ResumeOptions resume;
        resume.on_job = [&](const px::LedgerEntry& entry, const px::expected<px::Job, px::Error>& outcome) {
            answer(answers, entry.label, outcome);
        };
        auto resumed = co_await client.resume(std::move(resume));
        if (!resumed) {
            throw Exit{exit_ledger, "resume failed: " + px::to_string(resumed.error())};
        }
        std::set<std::string> known;
        for (const auto& entry : all_entries(ledger)) {
            known.insert(entry.label);
        }
        std::deque<std::string> todo;
        for (unsigned i = 1; i <= settings.jobs; ++i) {
            std::string label = "job-" + std::to_string(i);
            if (!known.contains(label)) {
                todo.push_back(std::move(label));
            }
        }
        using Operation = decltype(asio::co_spawn(client.get_executor(),
                                                  std::declval<asio::awaitable<void>>(), asio::deferred));
        std::vector<Operation> runners;
        for (unsigned i = 0; i < settings.concurrency && i < todo.size(); ++i) {
            runners.push_back(
                asio::co_spawn(client.get_executor(), run_labels(client, todo, answers), asio::deferred));
        }
        if (!runners.empty()) {
            auto [order, failures] = co_await asio::experimental::make_parallel_group(std::move(runners))
                                         .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
            for (const std::exception_ptr& failure : failures) {
                if (failure) {
                    std::rethrow_exception(failure);
                }
            }
        }
        answer_from_ledger(ledger, answers);
        if (answers.count() >= settings.jobs) {
            co_return EXIT_SUCCESS;
        }
    }
    std::cerr << "crash_worker: " << answers.count() << " of " << settings.jobs << " labels answered after "
              << rounds << " rounds\n";
    co_return exit_unanswered;
}

px::ClientOptions client_options(const Settings& settings, std::shared_ptr<px::Ledger> ledger) {
    px::ClientOptions options;
    options.base_url = settings.base_url;
    options.api_key = settings.api_key;
    options.ca_file = settings.ca_file;
    // Enough attempts that a fifth of the requests failing at random almost never exhausts them, with
    // waits short enough that a job ends within a kill's random delay often enough.
    options.retry.max_attempts = 6;
    options.retry.backoff = {.initial = 5ms, .growth = 2.0, .max = 50ms, .jitter = 0.25};
    options.retry.min_hint = 1ms;
    options.poll.backoff = {.initial = 20ms, .growth = 1.0, .max = 20ms, .jitter = 0.2};
    options.poll.deadline = 60s;
    options.ledger = std::move(ledger);
    return options;
}

int run_worker(const Settings& settings) {
    const auto ledger = open_ledger(settings.ledger);
    Answers answers(settings.out);
    asio::io_context io;
    px::Client client(io.get_executor(), client_options(settings, ledger));
    std::optional<int> code;
    std::exception_ptr failure;
    asio::co_spawn(io, work(settings, client, *ledger, answers), [&](std::exception_ptr error, int result) {
        failure = error;
        code = result;
        // Idle pooled connections may keep the context busy; the work is done.
        io.stop();
    });
    io.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return code.value_or(exit_unanswered);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Settings settings = parse_command_line(argc, argv);
        return settings.report ? report(settings) : run_worker(settings);
    } catch (const Exit& exit) {
        std::cerr << "crash_worker: " << exit.message << '\n';
        return exit.code;
    } catch (const std::exception& e) {
        std::cerr << "crash_worker: " << e.what() << '\n';
        return exit_other;
    }
}
