"""The desktop window: keys and clicks, live enrolment prompts, drawing, text in any
script and the name dialog. It imports no source and no output."""
