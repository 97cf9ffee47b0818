// The words of the simulator's answers, shared by the Sonar jobs and the Agent API's responses.
//
// By default an answer reads like a short real one, because it is the first thing a newcomer sees of the
// library (examples/run-ask): a few sentences that quote the question and cite three sources, and for a
// model that reasons, a <think> block before them. SimulatorOptions::answer_bytes pads the same answer
// with neutral filler to a fixed size instead, for the benchmarks. Nothing here is random: the same
// question and id always give the same answer.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity_sim::detail {

struct Source {
    std::string_view title;
    std::string_view host;  // each source on its own host, as the results of a real search are
    std::string_view date;
    std::string_view last_updated;
    std::string_view snippet;
};

// Cited as [1], [2] and [3], in this order, by both the thinking and the answer.
inline constexpr std::array<Source, 3> sources{{
    {"Overview (simulated source)", "example.org", "2025-03-01", "2025-06-10",
     "An overview that answers the question directly, with the figure most sources quote."},
    {"Survey with recent data (simulated source)", "example.com", "2024-11-20", "2025-01-05",
     "A detailed survey whose more recent data reaches the same conclusion as the overview."},
    {"Background article (simulated source)", "example.net", "2023-05-14", "2024-02-02",
     "Background on how the figures were arrived at, and on where estimates still differ."},
}};

// Unique per job or response, so a client that mixes up two answers shows it in their citations.
inline std::string source_url(std::size_t index, std::string_view id) {
    return "https://" + std::string(sources[index].host) + "/perplexity-sim/" + std::string(id) + "/source-" +
           std::to_string(index + 1);
}

// The Sonar models that show their reasoning in a leading <think> block: the deep-research and
// reasoning ones. The others answer straight away, as the real ones do.
inline bool shows_thinking(std::string_view model) {
    return model.find("deep-research") != std::string_view::npos ||
           model.find("reasoning") != std::string_view::npos;
}

// Without the tags; it leads to the answer below, citing the same sources.
inline std::string thinking_about(const std::string& question) {
    return "The user asks: \"" + question +
           "\"\nI should find an overview that answers this directly, then a more detailed or more recent "
           "source to check it against.\nThe search found an overview [1], a survey with recent data [2] "
           "and a background article [3]. [1] and [2] agree, and [3] explains how their figures were "
           "arrived at.\nSo the answer can be short: lead with what [1] and [2] agree on, then say what [3] "
           "adds.";
}

struct AnswerText {
    std::string text;
    // Where the question quoted at the start ends: citation markers are looked for after it only, since
    // the question may contain "[1]" too.
    std::size_t after_question = 0;
};

// It still opens with `Simulated answer to "QUESTION"`, which says plainly where it comes from and lets
// tests find the question in it.
inline AnswerText answer_to(const std::string& question) {
    AnswerText answer;
    answer.text = "Simulated answer to \"" + question + "\"";
    answer.after_question = answer.text.size();
    answer.text +=
        ": the sources found agree on the essentials [1][2]. The overview [1] answers the question "
        "directly, and the survey [2] reaches the same conclusion from more recent data. The background "
        "article [3] explains how that answer was arrived at and where estimates still differ. In short, "
        "the widely quoted answer holds; follow the citations below for the details.";
    return answer;
}

// An answer stopped before its end, as by max_output_tokens: roughly the first half, ended at a space of
// the simulator's own (ASCII) words, so that a character of the question is never split.
inline void cut_short(AnswerText& answer) {
    const std::size_t half = answer.after_question + (answer.text.size() - answer.after_question) / 2;
    const std::size_t space = answer.text.rfind(' ', half);
    answer.text.resize(space == std::string::npos || space < answer.after_question ? half : space);
}

// Pads `text` with filler sentences to exactly `target` bytes. Only the ASCII filler is cut, so a text
// that is already longer stays as it is: the size is approximate for long questions.
inline void pad_to(std::string& text, std::optional<std::size_t> target) {
    if (!target || text.size() >= *target) {
        return;
    }
    static constexpr std::string_view filler =
        " This sentence pads the simulated answer to its configured size.";
    while (text.size() < *target) {
        text += filler;
    }
    text.resize(*target);
}

}  // namespace perplexity_sim::detail
