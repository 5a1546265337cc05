"""Fixed reference texts: the kind of content the cost guides price (emails, meeting notes, summaries)."""

EMAIL = (
    "Subject: Re: Q3 vendor review and the migration timeline\n\n"
    "Hi Dana,\n\nThanks for sending the notes from Tuesday. Before the steering call on Friday I want to make sure "
    "we agree on three points. First, the transcription backlog: we still have about forty hours of customer "
    "interviews from the spring research round that nobody has summarized, and the product team keeps asking for "
    "the themes. Second, the support inbox: the classification rules we wrote last year miss roughly one ticket in "
    "five, mostly billing questions that mention a refund and a login problem in the same message. Third, the "
    "budget: finance approved the pilot, but only if we can show the monthly cost per thousand requests and how "
    "long the hardware takes to pay for itself.\n\n"
    "Could you pull together the usage numbers for the last three months, split by task type, and send them to me "
    "and Priya by Thursday noon? I will draft the one-page summary for the steering group and circulate it before "
    "the call.\n\nBest regards,\nMarco\n\n"
)

MEETING_NOTES = (
    "Meeting notes, platform sync, attendees: Dana, Marco, Priya, Lee. Action items: Lee benchmarks the local "
    "model on the spare workstation and reports tokens per second and power draw under a realistic load. Priya "
    "checks whether the privacy review allows sending interview transcripts to an external service. Dana compares "
    "three transcription vendors on price per audio minute and accuracy on our own recordings. Marco writes the "
    "routing rules: simple extraction and classification stay local, long reports and agent tasks go to the "
    "hosted model. Open questions: who maintains the box, what happens when it is down, and whether the numbers "
    "hold when twenty people use it at once. Next meeting in two weeks, same time.\n\n"
)

CORPUS = EMAIL + MEETING_NOTES
