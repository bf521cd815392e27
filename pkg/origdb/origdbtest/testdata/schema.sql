-- The original PiSeduce's two tables, as SQLAlchemy 1.3 (its requirements.txt) creates them on
-- MariaDB from database/tables.py: Boolean is BOOL (tinyint(1)) with a CHECK constraint,
-- String(n) is VARCHAR(n), Text is TEXT, DateTime is DATETIME; no charset is given, so the
-- tables take the database's default, latin1 on the original's MariaDB.
CREATE TABLE user (
	id INTEGER NOT NULL AUTO_INCREMENT,
	email VARCHAR(200),
	_password TEXT,
	firstname TEXT,
	lastname TEXT,
	ssh_key TEXT,
	email_confirmed BOOL,
	user_authorized BOOL,
	is_admin BOOL,
	email_confirmation_token TEXT,
	PRIMARY KEY (id),
	UNIQUE (email),
	CHECK (email_confirmed IN (0, 1)),
	CHECK (user_authorized IN (0, 1)),
	CHECK (is_admin IN (0, 1))
) DEFAULT CHARSET=latin1;

CREATE TABLE deployment (
	id INTEGER NOT NULL AUTO_INCREMENT,
	state VARCHAR(120),
	process TEXT,
	environment TEXT,
	os_update BOOL,
	node_name TEXT,
	name TEXT,
	duration TEXT,
	system_size TEXT,
	system_pwd VARCHAR(60),
	public_key TEXT,
	init_script TEXT,
	start_date DATETIME,
	end_date DATETIME,
	temp_info TEXT,
	updated_at DATETIME,
	user_id INTEGER NOT NULL,
	PRIMARY KEY (id),
	CHECK (os_update IN (0, 1)),
	FOREIGN KEY(user_id) REFERENCES user (id)
) DEFAULT CHARSET=latin1;
