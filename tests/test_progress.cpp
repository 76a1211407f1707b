// ProgressBar: one line per job when not on a terminal, in-place redraws on a terminal.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"

using glimpse::ProgressBar;

TEST(ProgressBar, FormatsDurations) {
  EXPECT_EQ(ProgressBar::format_duration(0), "0:00");
  EXPECT_EQ(ProgressBar::format_duration(75), "1:15");
  EXPECT_EQ(ProgressBar::format_duration(3725), "1:02:05");
  EXPECT_EQ(ProgressBar::format_duration(-1), "?");
}

TEST(ProgressBar, PlainModePrintsOneLineAtTheEnd) {
  std::ostringstream os;
  {
    ProgressBar bar("epoch 1/2", 5, "img", ProgressBar::Mode::Plain, &os);
    for (int i = 0; i < 3; ++i) bar.step(64);
    EXPECT_EQ(os.str(), "");
    bar.step(64);
    bar.step(10);
    bar.set_postfix("loss 0.5000");
    bar.finish("test 90.0%");
  }
  const std::string s = os.str();
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1) << s;
  EXPECT_EQ(s.find('\r'), std::string::npos) << s;
  EXPECT_NE(s.find("epoch 1/2"), std::string::npos) << s;
  EXPECT_NE(s.find("5/5"), std::string::npos) << s;
  EXPECT_NE(s.find("img/s"), std::string::npos) << s;
  EXPECT_NE(s.find("loss 0.5000"), std::string::npos) << s;
  EXPECT_NE(s.find("test 90.0%"), std::string::npos) << s;
}

TEST(ProgressBar, TtyModeRedrawsInPlace) {
  std::ostringstream os;
  ProgressBar bar("eval", 3, "img", ProgressBar::Mode::Tty, &os);
  bar.redraw_s = 0;
  bar.step(8);
  bar.set_postfix("acc 50.0%");
  bar.step(8);
  bar.step(8);
  bar.finish();
  const std::string s = os.str();
  EXPECT_GE(std::count(s.begin(), s.end(), '\r'), 3) << s;
  EXPECT_EQ(s.back(), '\n');
  EXPECT_NE(s.find("ETA"), std::string::npos) << s;
  EXPECT_NE(s.find("3/3"), std::string::npos) << s;
}

TEST(ProgressBar, FinishesOnDestructionAndRefusesEmptyJobs) {
  std::ostringstream os;
  {
    ProgressBar bar("job", 2, "it", ProgressBar::Mode::Plain, &os);
    bar.step();
  }
  EXPECT_NE(os.str().find("1/2"), std::string::npos);
  EXPECT_THROW(ProgressBar("job", 0), glimpse::Error);
}
