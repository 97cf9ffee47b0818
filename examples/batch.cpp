// batch: answers a file of questions through one Client, a few jobs at a time, and can be stopped and
// rerun at any point without creating (and paying for) a job twice.
//
//   batch --in questions.jsonl --out answers.jsonl [--journal answers.jsonl.journal] [--concurrency 4]
//
// How the resume works: the journal is the library's SQLite ledger (ClientOptions::ledger), each entry
// labelled with its question's id. Client::run records a question's intent, with the idempotency key its
// create will carry, before the create is sent, then the job id once the API answers, then the outcome.
// A rerun skips the ids already in --out, lets Client::resume carry on the unfinished entries (it waits
// on their job ids, and sends a create whose answer never arrived again with the same key, so the API
// hands back the job it may already have made), and runs only the questions the ledger has never seen.
//
// With --api agent each question is an Agent API background response (Client::run_response). That API
// has no idempotency key and no list, so the resume is as good as it can be and no better: a rerun waits
// on the recorded response ids, but a question whose create was sent while its answer never arrived is
// not sent again, since a response may exist that nobody can find, and resending would pay twice. It is
// left unfinished and named, for the user to decide (--resend-unfindable).
#include "example_support.hpp"

#include <perplexity/sqlite_ledger.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
namespace px = perplexity;

namespace {

enum ExitCode {
    all_completed = 0,
    some_failed = 1,
    usage_error = 2,
    unfinished = 3,
    deadline_passed = 4,
    interrupted = 5
};

constexpr std::string_view usage = R"(usage: batch --in FILE --out FILE [options]

Answers every question of a JSONL file (one {"id": "...", "question": "..."} per line) as async jobs,
at most --concurrency at a time through one client, and appends one JSON line per question to --out:
  {"id", "job_id", "status": "COMPLETED", "answer"}     the job completed
  {"id", "job_id", "status": "FAILED", "error"}         the job failed
  {"id", "job_id", "status": "ERROR", "error"}          the API refused the question for good (a 4xx)
Other errors (network, timeouts, rate limits, server errors) write no line: the question is left for
the next run.

Rerun with the same files after a crash, Ctrl-C or an error: questions already in --out are skipped,
jobs already created are waited on again, and no question is ever created twice (the journal, a SQLite
ledger, keeps each create's idempotency key, recorded before the create is sent).

With --api agent, each question is an Agent API background response, and the lines carry
"response_id" instead of "job_id"; besides COMPLETED, FAILED and ERROR, a status can be CANCELLED
(cancelled on the server by someone else), INCOMPLETE (cut short; the partial "answer" is kept) or
REQUIRES_ACTION (the model called a function tool; none is offered, so only a model with tools of its
own can), each counted as not completed. That API has no idempotency key: a rerun waits on the
recorded response ids, but a question whose create was sent without its answer arriving (a crash, or
Ctrl-C, at that moment) is not sent again, since it may have made a response that cannot be found; it
is named and left unfinished (--resend-unfindable sends it again, at the risk of paying twice). A
journal is tied to the --api it was written with.

options:
  --in FILE              the questions (required)
  --out FILE             where answers are appended (required)
  --journal FILE         the resume journal, a SQLite ledger (default: the --out file name plus
                         ".journal")
  --concurrency N        new questions in progress at once (default 4); the unfinished questions of
                         an earlier run are carried on besides, all at once
  --creates-per-minute N space creates evenly at this rate, e.g. your usage tier's limit
                         (default 0: no spacing; a 429 still pauses all creates)
  --deadline SECONDS     for the whole batch: stop waiting when it passes; unfinished jobs keep
                         running and the next run picks them up (default: none; each job's wait
                         still ends after 30 minutes)
  --api sonar|agent      which API to ask (default: sonar)
  --model NAME           model to use (sonar default: sonar-deep-research; with --api agent, a
                         provider-prefixed model such as perplexity/sonar, used instead of the preset)
  --preset NAME          --api agent: the preset to run (default: medium)
  --resend-unfindable    --api agent: send again the questions whose create may have made a response
                         that cannot be found (it may then be paid for twice)
)";

constexpr std::string_view usage_tail = R"(  -h, --help             show this help

Progress goes to stderr: a bar on a terminal, one line per event otherwise.

exit codes: 0 every question completed, 1 every question has a line but some FAILED or ERROR,
            2 usage, configuration or input error, 3 some questions unfinished after errors
            (rerun to resume), 4 the deadline passed with questions unfinished, 5 interrupted
            (SIGINT or SIGTERM; rerun to resume)
)";

struct Arguments {
    examples::ConnectionFlags connection{};
    std::string in{};
    std::string out{};
    std::string journal{};
    std::size_t concurrency = 4;
    unsigned creates_per_minute = 0;
    std::optional<std::chrono::seconds> deadline{};
    examples::ApiFlags api{};
    bool resend_unfindable = false;
};

std::optional<Arguments> parse_arguments(int argc, char** argv) {
    Arguments arguments;
    examples::Flags flags("batch", argc, argv);
    while (flags.next()) {
        const std::string_view word = flags.word();
        bool bad = false;
        if (examples::parse_common_flag(flags, arguments.connection, usage, usage_tail, all_completed, bad)) {
            // handled
        } else if (word == "--in" || word == "--out" || word == "--journal") {
            const auto value = flags.value();
            bad = !value;
            if (value) {
                (word == "--in"    ? arguments.in
                 : word == "--out" ? arguments.out
                                   : arguments.journal) = *value;
            }
        } else if (arguments.api.parse(flags, bad)) {
            // handled
        } else if (word == "--resend-unfindable") {
            arguments.resend_unfindable = true;
        } else if (word == "--concurrency") {
            const auto n = flags.number(1, 10000);
            bad = !n;
            arguments.concurrency = n.value_or(1);
        } else if (word == "--creates-per-minute") {
            const auto n = flags.number(0, 1000000);
            bad = !n;
            arguments.creates_per_minute = static_cast<unsigned>(n.value_or(0));
        } else if (word == "--deadline") {
            const auto n = flags.number(1);
            bad = !n;
            arguments.deadline = std::chrono::seconds(n.value_or(1));
        } else {
            flags.unknown();
            return std::nullopt;
        }
        if (bad) {
            return std::nullopt;
        }
    }
    if (arguments.in.empty() || arguments.out.empty()) {
        std::cerr << "batch: --in and --out are required\n";
        return std::nullopt;
    }
    if (!arguments.api.consistent("batch")) {
        return std::nullopt;
    }
    if (arguments.resend_unfindable && !arguments.api.agent) {
        std::cerr << "batch: --resend-unfindable needs --api agent\n";
        return std::nullopt;
    }
    if (arguments.journal.empty()) {
        arguments.journal = arguments.out + ".journal";
    }
    return arguments;
}

struct Question {
    std::string id{};
    std::string text{};
};

/// A problem with one of the files, already worded for the user.
struct InputError {
    std::string message{};
};

std::string where(const std::string& file, std::size_t line) {
    return file + ":" + std::to_string(line);
}

/// The complete lines of a file we append to (none when it does not exist). A crash can leave a torn
/// last line; it is cut off here, so that appending goes on from a clean line end.
std::vector<std::string> read_lines_repairing(const std::string& file) {
    std::vector<std::string> lines;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return lines;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string content = buffer.str();
    const std::size_t complete = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
    if (complete != content.size()) {
        std::cerr << "batch: " << file << ": removing an incomplete last line (left by a crash)\n";
        std::error_code ec;
        std::filesystem::resize_file(file, complete, ec);
        if (ec) {
            throw InputError{file + ": cannot remove the incomplete last line: " + ec.message()};
        }
    }
    std::size_t start = 0;
    while (start < complete) {
        const std::size_t end = content.find('\n', start);
        lines.push_back(content.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

/// The member `name` of a JSON line as a non-empty string, or an InputError naming the line.
std::string string_member(const json::object& object, std::string_view name, const std::string& at) {
    const json::value* value = object.if_contains(name);
    if (value == nullptr || !value->is_string() || value->as_string().empty()) {
        throw InputError{at + ": \"" + std::string(name) + "\" must be a non-empty string"};
    }
    return std::string(value->as_string());
}

json::object parse_line(const std::string& line, const std::string& at) {
    boost::system::error_code ec;
    json::value value = json::parse(line, ec);
    if (ec) {
        throw InputError{at + ": not valid JSON (" + ec.message() + ")"};
    }
    if (!value.is_object()) {
        throw InputError{at + ": expected a JSON object"};
    }
    return std::move(value.as_object());
}

std::vector<Question> read_questions(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw InputError{file + ": cannot open: " + std::strerror(errno)};
    }
    std::vector<Question> questions;
    std::map<std::string, std::size_t> line_of_id;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
            continue;
        }
        const std::string at = where(file, number);
        const json::object object = parse_line(line, at);
        Question question{string_member(object, "id", at), string_member(object, "question", at)};
        if (const auto [it, fresh] = line_of_id.emplace(question.id, number); !fresh) {
            throw InputError{at + ": duplicate id \"" + question.id + "\" (first on line " +
                             std::to_string(it->second) + ")"};
        }
        questions.push_back(std::move(question));
    }
    return questions;
}

/// The ids already answered, with their status.
std::map<std::string, std::string> read_answered(const std::string& file) {
    std::map<std::string, std::string> answered;
    std::size_t number = 0;
    for (const std::string& line : read_lines_repairing(file)) {
        const std::string at = where(file, ++number);
        const json::object object = parse_line(line, at);
        answered[string_member(object, "id", at)] = string_member(object, "status", at);
    }
    return answered;
}

/// A file that only grows by whole lines: each line is a single write() (O_APPEND), then fsync(), so
/// after a crash the file ends with complete lines, perhaps followed by one torn line that the next
/// run cuts off.
class LineFile {
  public:
    explicit LineFile(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            throw InputError{path + ": cannot open for appending: " + std::strerror(errno)};
        }
    }

    /// Two runs appending to the same files would both create the questions neither has answered yet.
    void lock_exclusively() {
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            throw InputError{path_ + ": " +
                             (errno == EWOULDBLOCK ? std::string("in use by another batch run")
                                                   : std::string("cannot lock: ") + std::strerror(errno))};
        }
    }
    LineFile(const LineFile&) = delete;
    LineFile& operator=(const LineFile&) = delete;
    ~LineFile() { ::close(fd_); }

    /// Appends `object` as one line; false (after saying why) when it may not be on disk.
    bool append(const json::object& object) {
        const std::string line = json::serialize(object) + "\n";
        const ssize_t written = ::write(fd_, line.data(), line.size());
        if (written != static_cast<ssize_t>(line.size()) || ::fsync(fd_) != 0) {
            std::cerr << "batch: " << path_ << ": write failed: " << std::strerror(errno) << "\n";
            return false;
        }
        return true;
    }

  private:
    std::string path_;
    int fd_ = -1;
};

/// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise (logs, pipes).
class Progress {
  public:
    Progress(std::size_t total, std::size_t already_done, std::size_t already_failed)
        : terminal_(::isatty(STDERR_FILENO) == 1),
          total_(total),
          done_(already_done),
          failed_(already_failed) {}

    void started() {
        ++running_;
        redraw();
    }
    void finished(bool answered, bool failed) {
        --running_;
        done_ += answered ? 1 : 0;
        failed_ += failed ? 1 : 0;
        redraw();
    }
    /// An event worth a line of its own, above the bar on a terminal.
    void say(const std::string& text) {
        if (terminal_) {
            std::cerr << "\r\033[K";
        }
        std::cerr << "batch: " << text;
        if (!terminal_) {
            std::cerr << " [" << done_ << "/" << total_ << " done]";
        }
        std::cerr << "\n";
        redraw();
    }
    void close() {
        if (terminal_) {
            std::cerr << "\n";
        }
    }

  private:
    void redraw() {
        if (!terminal_) {
            return;
        }
        constexpr std::size_t width = 30;
        const std::size_t filled = total_ == 0 ? width : done_ * width / total_;
        std::cerr << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, '-') << "] "
                  << done_ << "/" << total_ << " done, " << running_ << " running";
        if (failed_ != 0) {
            std::cerr << ", " << failed_ << " failed";
        }
        std::cerr << std::flush;
    }

    bool terminal_;
    std::size_t total_;
    std::size_t done_;
    std::size_t failed_;
    std::size_t running_ = 0;
};

/// Is this error final for the question? The API refused the request itself: asking again with the same
/// request cannot help. (Authentication and rate limit statuses are not: they are fixed by the user or by
/// time.)
bool refused_for_good(const px::Error& error) {
    if (error.kind == px::ErrorKind::invalid_argument) {
        return true;
    }
    const int status = error.http_status;
    return error.kind == px::ErrorKind::http_status && status >= 400 && status < 500 &&
           !px::is_retryable(error) && status != 401 && status != 403;
}

class Batch {
  public:
    Batch(px::Client& client, const Arguments& arguments, px::Ledger& journal, LineFile& out,
          Progress& progress, asio::signal_set& signals, std::size_t failed_before)
        : client_(client),
          arguments_(arguments),
          journal_(journal),
          out_(out),
          progress_(progress),
          signals_(signals),
          failed_before_(failed_before) {
        if (arguments.deadline) {
            deadline_ = std::chrono::steady_clock::now() + *arguments.deadline;
        }
    }

    /// Starts on the questions that have no line in --out yet; the io_context runs until all are done.
    void begin(std::vector<Question> unanswered) {
        open_ = unanswered.size();
        spawn(read_journal(std::move(unanswered)));
    }

    /// Ctrl-C: no new questions, and every operation in progress is cancelled. What was created stays in
    /// the journal.
    void interrupt() {
        stopping_ = interrupted_ = true;
        for (auto& signal : slots_) {
            signal.emit(asio::cancellation_type::terminal);
        }
        resume_cancel_.emit(asio::cancellation_type::terminal);
    }

    int exit_code() const {
        if (unusable_journal_) {
            return usage_error;
        }
        if (interrupted_) {
            return interrupted;
        }
        if (deadline_unfinished_ != 0) {
            return deadline_passed;
        }
        if (error_unfinished_ != 0 || stopping_ || crashed_) {
            return unfinished;
        }
        return failed_ + failed_before_ != 0 ? some_failed : all_completed;
    }

    std::string summary() const {
        return std::to_string(completed_) + " completed, " + std::to_string(failed_) + " failed, " +
               std::to_string(open_ - completed_ - failed_) + " unfinished";
    }

  private:
    enum class Outcome { answered, failed, unfinished };

    /// Runs `work`; once nothing is left running, the signal wait is cancelled so that io_context::run
    /// returns.
    void spawn(asio::awaitable<void> work) {
        ++active_;
        asio::co_spawn(client_.get_executor(), std::move(work), [this](std::exception_ptr error) {
            if (error) {
                crashed_ = true;
                try {
                    std::rethrow_exception(error);
                } catch (const std::exception& e) {
                    progress_.say(std::string("internal error: ") + e.what());
                }
                interrupt();
            }
            if (--active_ == 0) {
                signals_.cancel();
            }
        });
    }

    /// Reads the journal, then `sort_out`.
    asio::awaitable<void> read_journal(std::vector<Question> unanswered) {
        // A named query, not `find({})`: GCC 12 frees parts of a temporary passed to a coroutine by value
        // while the coroutine still uses them.
        px::LedgerQuery everything;
        auto entries = co_await journal_.find(std::move(everything));
        if (!entries) {
            progress_.say("cannot read the journal: " + px::to_string(entries.error()));
            unusable_journal_ = true;
            co_return;
        }
        sort_out(std::move(unanswered), *entries);
    }

    /// Sorts each open question by what the journal says of it (its latest entry), then carries on the
    /// unfinished entries and starts the questions the journal has never seen.
    void sort_out(std::vector<Question> unanswered, const std::vector<px::LedgerEntry>& entries) {
        std::map<std::string, const px::LedgerEntry*> latest;
        bool any_unfinished = false;
        for (const px::LedgerEntry& entry : entries) {
            if ((entry.api == px::LedgerApi::agent) != arguments_.api.agent) {
                // Its ids would be polled on the wrong API.
                progress_.say(arguments_.journal + ": written by a run with --api " +
                              px::to_string(entry.api) +
                              "; rerun with that --api, or use another --journal and --out");
                unusable_journal_ = true;
                return;
            }
            latest[entry.label] = &entry;
            any_unfinished = any_unfinished || px::is_unfinished(entry.state);
        }
        for (Question& question : unanswered) {
            const auto found = latest.find(question.id);
            const px::LedgerEntry* entry = found == latest.end() ? nullptr : found->second;
            if (entry == nullptr || (entry->state == px::EntryState::failed && entry->job_id.empty())) {
                // Never sent, or its create provably made nothing: sending it cannot pay twice.
                fresh_.push_back(std::move(question));
            } else if (entry->state == px::EntryState::completed || entry->state == px::EntryState::failed) {
                settle_from_journal(question, *entry);
            } else if (entry->state == px::EntryState::dropped) {
                ++error_unfinished_;
                progress_.say(question.id + ": dropped in " + arguments_.journal + "; not sent again");
            } else if (entry->api == px::LedgerApi::agent && entry->job_id.empty() &&
                       !arguments_.resend_unfindable) {
                ++error_unfinished_;
                progress_.say(question.id +
                              ": not sent again: its create was sent but its answer never arrived, so a "
                              "response may exist that cannot be found (the Agent API has no idempotency "
                              "key and no list); rerun with --resend-unfindable to send it anyway, at the "
                              "risk of paying twice");
            } else {
                resumable_.emplace(question.id, std::move(question));
            }
        }
        for (std::size_t slot = 0; slot < std::min(arguments_.concurrency, fresh_.size()); ++slot) {
            slots_.emplace_back();
        }
        // Client::resume leaves alone the entries the Client's own runs are working on, so new questions
        // start at once, beside it.
        if (any_unfinished) {
            spawn(resume());
        }
        for (auto& slot : slots_) {
            spawn(worker(slot));
        }
    }

    /// Takes new questions one after another until none are left or the batch stops.
    asio::awaitable<void> worker(asio::cancellation_signal& cancel) {
        while (!stopping_ && next_ < fresh_.size()) {
            const Question& question = fresh_[next_++];
            progress_.started();
            std::string news;
            // Not `agent ? co_await a : co_await b`: GCC miscompiles a co_await inside a conditional
            // expression.
            Outcome outcome = Outcome::unfinished;
            if (arguments_.api.agent) {
                outcome = co_await answer_agent(question, cancel, news);
            } else {
                outcome = co_await answer(question, cancel, news);
            }
            finished(question, outcome, news);
        }
    }

    void finished(const Question& question, Outcome outcome, const std::string& news) {
        progress_.finished(outcome == Outcome::answered || outcome == Outcome::failed,
                           outcome == Outcome::failed);
        if (!news.empty()) {
            progress_.say(question.id + ": " + news);
        }
    }

    /// A question whose outcome the journal has but --out lacks (a crash between the two writes): its
    /// line is written from the recorded job, without asking the API.
    void settle_from_journal(const Question& question, const px::LedgerEntry& entry) {
        progress_.started();
        std::string news;
        Outcome outcome = Outcome::unfinished;
        if (entry.result.empty()) {
            // Ended without a job to show (e.g. the API no longer knew it): what the run wrote then.
            json::object line{{"id", question.id},
                              {arguments_.api.agent ? "response_id" : "job_id", entry.job_id},
                              {"status", "ERROR"},
                              {"error", entry.error}};
            news = "ERROR: " + entry.error;
            outcome = write_answer(line, Outcome::failed);
        } else if (arguments_.api.agent) {
            outcome = record_agent(question, examples::recorded_response(entry), news);
        } else {
            outcome = record(question, examples::recorded_job(entry), news);
        }
        finished(question, outcome, news + " (from " + arguments_.journal + ")");
    }

    /// Carries on every unfinished entry of the journal at once: there are at most as many as the
    /// earlier runs had in progress, and their jobs exist already or are created again with their keys.
    asio::awaitable<void> resume() {
        px::ResumeOptions options{.recreate_unfindable_responses = arguments_.resend_unfindable};
        const auto poll = poll_policy();
        if (!poll) {
            deadline_unfinished_ += resumable_.size();
            co_return;
        }
        options.wait.poll = options.wait_response.poll = poll;
        // `keep` sees each entry resume is about to carry on: the moment to say so.
        options.keep = [this](const px::LedgerEntry& entry) {
            if (resumable_.contains(entry.label)) {
                progress_.started();
                progress_.say(
                    entry.label +
                    (!entry.job_id.empty()
                         ? (arguments_.api.agent ? ": resuming response " : ": resuming job ") + entry.job_id
                     : arguments_.api.agent
                         ? std::string(": sending again, at the risk of paying twice")
                         : std::string(": sending again with its recorded idempotency key")));
            }
            return true;
        };
        options.on_job = [this](const px::LedgerEntry& entry,
                                const px::expected<px::Job, px::Error>& result) {
            if (const auto question = resumable_.find(entry.label); question != resumable_.end()) {
                std::string news;
                finished(question->second, record(question->second, result, news), news);
            }
        };
        options.on_response = [this](const px::LedgerEntry& entry,
                                     const px::expected<px::Response, px::Error>& result) {
            if (const auto question = resumable_.find(entry.label); question != resumable_.end()) {
                std::string news;
                finished(question->second, record_agent(question->second, result, news), news);
            }
        };
        const auto report = co_await cancellable(client_.resume(std::move(options)), resume_cancel_);
        if (!report) {
            progress_.say("cannot resume: " + px::to_string(report.error()));
            unusable_journal_ = true;
            co_return;
        }
        for (const px::LedgerEntry& entry : report->stale) {
            if (resumable_.contains(entry.label)) {
                ++error_unfinished_;
                progress_.say(entry.label + ": too old to carry on safely; left unfinished in " +
                              arguments_.journal);
            }
        }
    }

    /// The poll policy of one question's wait, whose deadline is what is left of the batch's; none when
    /// that has passed already.
    std::optional<px::PollPolicy> poll_policy() const {
        px::PollPolicy poll = client_.options().poll;
        if (deadline_) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                *deadline_ - std::chrono::steady_clock::now());
            if (left <= std::chrono::milliseconds(0)) {
                return std::nullopt;
            }
            poll.deadline = left;
        }
        return poll;
    }

    asio::awaitable<Outcome> answer(const Question& question, asio::cancellation_signal& cancel,
                                    std::string& news) {
        px::WaitOptions options{.poll = poll_policy(), .label = question.id};
        if (!options.poll) {
            ++deadline_unfinished_;
            co_return Outcome::unfinished;
        }
        options.on_created = [this, &question](const px::Job& job) {
            progress_.say(question.id + ": created job " + job.id);
        };
        const auto result = co_await cancellable(
            client_.run(arguments_.api.sonar_request(question.text), std::move(options)), cancel);
        co_return record(question, result, news);
    }

    /// --api agent: as `answer`, with a background response.
    asio::awaitable<Outcome> answer_agent(const Question& question, asio::cancellation_signal& cancel,
                                          std::string& news) {
        px::ResponseWaitOptions options{.poll = poll_policy(), .label = question.id};
        if (!options.poll) {
            ++deadline_unfinished_;
            co_return Outcome::unfinished;
        }
        options.on_created = [this, &question](const px::Response& response) {
            progress_.say(question.id + ": created response " + response.id);
        };
        const auto result = co_await cancellable(
            client_.run_response(arguments_.api.agent_request(question.text), std::move(options)), cancel);
        co_return record_agent(question, result, news);
    }

    /// Runs `operation` with its own cancellation slot, which interrupt() triggers.
    template <class Result>
    asio::awaitable<px::expected<Result, px::Error>> cancellable(
        asio::awaitable<px::expected<Result, px::Error>> operation, asio::cancellation_signal& cancel) {
        co_return co_await asio::co_spawn(client_.get_executor(), std::move(operation),
                                          asio::bind_cancellation_slot(cancel.slot(), asio::use_awaitable));
    }

    Outcome record(const Question& question, const px::expected<px::Job, px::Error>& result,
                   std::string& news) {
        json::object line{{"id", question.id}};
        if (result) {
            line["job_id"] = result->id;
            line["status"] = "COMPLETED";
            line["answer"] = examples::answer_of(*result);
            news = "COMPLETED";
            return write_answer(line, Outcome::answered);
        }
        const px::Error& error = result.error();
        line["job_id"] = error.job_id ? json::value(*error.job_id) : json::value(nullptr);
        if (error.kind == px::ErrorKind::job_failed) {
            line["status"] = "FAILED";
            line["error"] = error.api_message.empty() ? "(no error message)" : error.api_message;
            news = "FAILED";
            return write_answer(line, Outcome::failed);
        }
        return record_error(line, error, news);
    }

    Outcome record_agent(const Question& question, const px::expected<px::Response, px::Error>& result,
                         std::string& news) {
        json::object line{{"id", question.id}};
        if (result) {
            line["response_id"] = result->id;
            switch (result->status) {
                case px::ResponseStatus::completed:
                    line["status"] = news = "COMPLETED";
                    line["answer"] = examples::answer_of(*result);
                    return write_answer(line, Outcome::answered);
                case px::ResponseStatus::incomplete:
                    line["status"] = news = "INCOMPLETE";
                    line["answer"] = examples::answer_of(*result);
                    return write_answer(line, Outcome::failed);
                default: {
                    // requires_action: the model called function tools, which this program does not offer.
                    std::string calls;
                    for (const px::FunctionCall* call : result->function_calls()) {
                        calls += (calls.empty() ? "" : ", ") + call->name;
                    }
                    line["status"] = news = "REQUIRES_ACTION";
                    line["error"] = "the response ended " + result->status_text +
                                    "; function calls: " + (calls.empty() ? "none listed" : calls);
                    return write_answer(line, Outcome::failed);
                }
            }
        }
        const px::Error& error = result.error();
        line["response_id"] = error.job_id ? json::value(*error.job_id) : json::value(nullptr);
        if (error.kind == px::ErrorKind::job_failed || error.kind == px::ErrorKind::response_cancelled) {
            line["status"] = news = error.kind == px::ErrorKind::job_failed ? "FAILED" : "CANCELLED";
            line["error"] = error.api_message.empty() ? error.message : error.api_message;
            return write_answer(line, Outcome::failed);
        }
        return record_error(line, error, news);
    }

    /// What both APIs' errors other than a failed (or cancelled) run come to.
    Outcome record_error(json::object& line, const px::Error& error, std::string& news) {
        if (refused_for_good(error)) {
            line["status"] = "ERROR";
            line["error"] = px::to_string(error);
            news = "ERROR: " + px::to_string(error);
            return write_answer(line, Outcome::failed);
        }
        if (error.kind == px::ErrorKind::ledger && !error.job_id) {
            // Nothing can be recorded, so nothing more may be created: a crash would lose it.
            stopping_ = true;
        }
        if (error.kind == px::ErrorKind::wait_deadline) {
            ++deadline_unfinished_;
            news = "deadline passed; " + std::string(arguments_.api.agent ? "response " : "job ") +
                   error.job_id.value_or("?") + " left for the next run";
        } else if (error.kind != px::ErrorKind::cancelled) {
            ++error_unfinished_;
            news = "left for the next run after " + px::to_string(error);
        }
        return Outcome::unfinished;
    }

    Outcome write_answer(const json::object& line, Outcome outcome) {
        if (!out_.append(line)) {
            stopping_ = true;
            ++error_unfinished_;
            return Outcome::unfinished;
        }
        ++(outcome == Outcome::answered ? completed_ : failed_);
        return outcome;
    }

    px::Client& client_;
    const Arguments& arguments_;
    px::Ledger& journal_;
    LineFile& out_;
    Progress& progress_;
    asio::signal_set& signals_;
    /// Open questions the journal has never seen (or whose create provably made nothing).
    std::vector<Question> fresh_;
    /// Open questions whose entries are unfinished, by id (their entries' label), for Client::resume.
    std::map<std::string, Question> resumable_;
    std::list<asio::cancellation_signal> slots_;
    asio::cancellation_signal resume_cancel_;
    std::optional<std::chrono::steady_clock::time_point> deadline_{};
    std::size_t open_ = 0;
    std::size_t next_ = 0;
    std::size_t active_ = 0;
    std::size_t completed_ = 0;
    std::size_t failed_ = 0;
    std::size_t failed_before_ = 0;  // lines of earlier runs that are not COMPLETED
    std::size_t error_unfinished_ = 0;
    std::size_t deadline_unfinished_ = 0;
    bool stopping_ = false;
    bool interrupted_ = false;
    bool crashed_ = false;
    bool unusable_journal_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    const auto arguments = parse_arguments(argc, argv);
    if (!arguments) {
        std::cerr << "run 'batch --help' for usage\n";
        return usage_error;
    }
    std::vector<Question> unanswered;
    std::size_t total = 0;
    std::size_t failed_before = 0;
    std::optional<LineFile> out;
    try {
        std::vector<Question> questions = read_questions(arguments->in);
        total = questions.size();
        // Locked before anything is read, so that a second run cannot act on the same state.
        out.emplace(arguments->out);
        out->lock_exclusively();
        const std::map<std::string, std::string> answered = read_answered(arguments->out);
        for (Question& question : questions) {
            const auto it = answered.find(question.id);
            if (it == answered.end()) {
                unanswered.push_back(std::move(question));
            } else if (it->second != "COMPLETED") {
                ++failed_before;
            }
        }
    } catch (const InputError& error) {
        std::cerr << "batch: " << error.message << "\n";
        return usage_error;
    }
    auto journal = px::SqliteLedger::open(arguments->journal);
    if (!journal) {
        std::cerr << "batch: " << px::to_string(journal.error()) << "\n";
        return usage_error;
    }
    const std::shared_ptr<px::Ledger> journal_file = std::move(*journal);
    px::ClientOptions options = arguments->connection.client_options();
    options.create_requests_per_minute = arguments->creates_per_minute;
    options.ledger = journal_file;

    asio::io_context io;
    px::Client client(io.get_executor(), options);
    if (!examples::usable("batch", client)) {
        return usage_error;
    }
    Progress progress(total, total - unanswered.size(), failed_before);
    if (unanswered.size() != total) {
        progress.say(std::to_string(total - unanswered.size()) + " of " + std::to_string(total) +
                     " questions already answered in " + arguments->out);
    }
    asio::signal_set signals(io, SIGINT, SIGTERM);
    Batch batch(client, *arguments, *journal_file, *out, progress, signals, failed_before);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) {
            progress.say("interrupted: cancelling; rerun to resume");
            batch.interrupt();
        }
    });
    batch.begin(std::move(unanswered));
    io.run();
    progress.close();
    std::cerr << "batch: " << batch.summary() << "\n";
    return batch.exit_code();
}
