"""TalentSphere job-board backend."""
